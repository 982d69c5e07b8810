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


@pytest.mark.slow
def test_simclr_reads_its_own_image_only_source(emoji_corpus, emoji_subset, tmp_path):
    """SLIP's ablation: the self-supervised images come from another (image-only) set than the captions."""
    folder = tmp_path / "openmoji"
    rows = [line.split("\t") for line in (emoji_corpus / "openmoji.tsv").read_text().splitlines()]
    fp = rows[0].index("filepath")
    for i, row in enumerate(rows[1:41]):
        (folder / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        (folder / f"c{i % 4}" / f"{i}.png").symlink_to((emoji_corpus / row[fp]).resolve())
    sources = "{pairs: {kind: csv, path: " + str(emoji_subset) + ", caption_key: caption}, photos: {kind: image_folder, root: " + str(folder) + "}}"  # fmt: skip
    overrides = small_run_overrides(
        emoji_subset,
        tmp_path,
        **{
            "data.sources": sources,
            "train.max_steps": 3,
            "train.log_every": 1,
            "objectives.simclr.source": "photos",
            "objectives.simclr.mlp_dim": 256,
            "objectives.simclr.embed_dim": 64,
            "train.batch_size": 16,
        },
    )
    cfg = load_config("slip", overrides)
    from synclip.train.setup import build_pretrainer

    assert build_pretrainer(cfg).recipe.views() == {"pairs": ["image", "text"], "photos": ["image_ssl"]}
    run_dir = train(cfg)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["simclr_loss"] > 0 and r["clip_loss"] > 0 for r in rows)
