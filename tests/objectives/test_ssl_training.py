"""SLIP trains end to end on real emoji pairs with the real loop, and its loss goes down."""

import json

import pytest

from run_helpers import small_run_overrides
from synclip.config import load_config
from synclip.train.loop import train


@pytest.mark.slow
def test_slip_training_lowers_the_loss(emoji_subset, tmp_path):
    overrides = small_run_overrides(
        emoji_subset,
        tmp_path,
        **{
            "train.epochs": 3,
            "train.log_every": 1,
            "objectives.simclr.mlp_dim": 256,
            "objectives.simclr.embed_dim": 64,
        },
    )
    run_dir = train(load_config("slip", overrides))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"clip_loss", "simclr_loss", "simclr_acc"} <= set(rows[-1])
    first = sum(r["loss"] for r in rows[:3]) / 3
    last = sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.5, (first, last)
