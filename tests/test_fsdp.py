"""``train.fsdp``: FSDP2 on 2 gloo CPU processes trains like DDP, and its sharded checkpoints resume on
2 and on 1 process and load and export as whole checkpoints."""

import pytest
import torch

from dist_utils import run_distributed
from run_helpers import small_run_overrides
from synclip.config import load_config
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.train.logging import read_metrics
from synclip.train.loop import train

pytestmark = pytest.mark.distributed
B = 8  # per rank


def _overrides(tsv, out, name, batch, **extra):
    return small_run_overrides(
        tsv,
        out,
        **{
            "train.name": name,
            "train.batch_size": batch,
            "train.epochs": 1,
            "train.max_steps": 3,
            "train.log_every": 1,
            "train.grad_clip_norm": 1.0,  # see test_scale: keeps float noise in Adam under its eps
            **extra,
        },
    )


def _train_rank(rank, world, recipe, overrides):
    run_dir = train(load_config(recipe, overrides))
    return read_metrics(run_dir)


def _weights(run_dir):
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    return {**state["model"], **{f"recipe.{k}": v for k, v in state["recipe"].items()}}


def _losses(metrics):
    return [{k: v for k, v in row.items() if k.endswith("loss")} for row in metrics]


def _assert_same_run(m_a, m_b, w_a, w_b, atol=1e-5):
    assert [r["step"] for r in m_a] == [r["step"] for r in m_b]
    for a, b in zip(_losses(m_a), _losses(m_b)):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    assert w_a.keys() == w_b.keys()
    for key in w_a:
        if isinstance(w_a[key], torch.Tensor) and w_a[key].is_floating_point():
            assert torch.allclose(w_a[key], w_b[key], rtol=1e-3, atol=atol), key


@pytest.mark.parametrize("recipe", ["clip", "slip"])
def test_fsdp_equals_ddp(recipe, emoji_subset, tmp_path):
    """Same losses and weights after 3 steps of FSDP2 and DDP on 2 processes."""
    ddp = run_distributed(_train_rank, 2, recipe, _overrides(emoji_subset, tmp_path, "ddp", B))
    fsdp = run_distributed(
        _train_rank, 2, recipe, _overrides(emoji_subset, tmp_path, "fsdp", B, **{"train.fsdp": "true"})
    )
    assert (tmp_path / "fsdp" / "shards").is_dir() and not (tmp_path / "ddp" / "shards").exists()
    _assert_same_run(fsdp[0], ddp[0], _weights(tmp_path / "fsdp"), _weights(tmp_path / "ddp"))
