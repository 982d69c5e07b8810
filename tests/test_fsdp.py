"""``train.fsdp``: FSDP2 on 2 gloo CPU processes trains like DDP, and its sharded checkpoints resume on
2 and on 1 process and load and export as whole checkpoints."""

import pytest
import torch

from dist_utils import run_distributed
from run_helpers import small_run_overrides
from synclip.config import ConfigError, load_config
from synclip.io.checkpoint import CheckpointError, read_checkpoint, read_synclip_checkpoint
from synclip.train.logging import read_metrics
from synclip.train.loop import train

B = 8  # per rank
STEPS = 3


def _overrides(tsv, out, name, batch, **extra):
    return small_run_overrides(
        tsv,
        out,
        **{
            "train.name": name,
            "train.batch_size": batch,
            "train.epochs": 1,
            "train.max_steps": STEPS,
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


def _assert_same_run(m_a, m_b, w_a, w_b, atol=1e-5, outliers=0, lr=0.0):
    assert [r["step"] for r in m_a] == [r["step"] for r in m_b]
    for a, b in zip(_losses(m_a), _losses(m_b)):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    assert w_a.keys() == w_b.keys()
    for key in w_a:
        if isinstance(w_a[key], torch.Tensor) and w_a[key].is_floating_point():
            off = ~torch.isclose(w_a[key], w_b[key], rtol=1e-3, atol=atol)
            # an element whose true gradient is ~0 gets a float-noise gradient that Adam scales to a
            # step of up to lr in either direction (see ATOL in test_scale.py): allow a handful, bounded
            assert int(off.sum()) <= outliers, (key, int(off.sum()))
            if outliers:
                assert (w_a[key] - w_b[key]).abs().max() <= 2 * STEPS * lr, key


def test_one_process_writes_sharded_checkpoints_that_resume(emoji_subset, tmp_path):
    """With one process ``train.fsdp`` trains unsharded but writes the same DCP checkpoints: stopped
    after 2 steps and resumed, the run ends where an uninterrupted one does; older shard folders are
    deleted, and a pointer file whose folder is incomplete is a clear error."""
    fsdp = {"train.fsdp": "true", "train.batch_size": 2 * B}
    straight = train(load_config("clip", _overrides(emoji_subset, tmp_path, "straight", 2 * B, **fsdp)))
    train(
        load_config(
            "clip", _overrides(emoji_subset, tmp_path, "cut", 2 * B, **fsdp, **{"train.max_steps": 2})
        )
    )
    cut = train(
        load_config(
            "clip", _overrides(emoji_subset, tmp_path, "cut", 2 * B, **fsdp, **{"train.resume": "auto"})
        )
    )
    _assert_same_run(read_metrics(cut)[-1:], read_metrics(straight)[-1:], _weights(cut), _weights(straight))
    pointer = read_checkpoint(cut / "checkpoint.pt", consolidate=False)
    assert pointer["shards"] == "shards/step_00000003" and "model" not in pointer
    assert sorted(p.name for p in (cut / "shards").iterdir()) == ["step_00000003"]

    (cut / "shards" / "step_00000003" / ".metadata").unlink()
    with pytest.raises(CheckpointError, match="missing or incomplete"):
        read_checkpoint(cut / "checkpoint.pt")


def test_fsdp_refuses_fp16():
    with pytest.raises(ConfigError, match="use train.precision=bf16"):
        load_config("clip", ["train.fsdp=true", "train.precision=fp16"])


CASES = {  # case -> (recipe, overrides of both runs)
    "clip": ("clip", {}),
    "slip": ("slip", {}),  # SimCLR head with global BatchNorm, two views, several objectives
    "clip_accum": ("clip", {"train.accum_steps": 2}),  # no_sync -> set_requires_gradient_sync
    # one temperature shared by three objectives (a replicated scalar), a feature queue, MLM heads
    "declip": ("declip", {}),
    # a locked EfficientNet image tower: frozen parameters and BatchNorm statistics inside a unit
    "lit": ("lit", {"model.name": "effnet-lite0-text"}),
    # an EMA teacher (objective-owned, outside the optimizer) and a DINO center buffer
    "silc": ("silc", {}),
}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("case", list(CASES))
def test_fsdp_equals_ddp(case, emoji_subset, tmp_path):
    """Same losses and weights after 3 steps of FSDP2 and DDP on 2 processes."""
    recipe, extra = CASES[case]
    ddp = run_distributed(_train_rank, 2, recipe, _overrides(emoji_subset, tmp_path, "ddp", B, **extra))
    fsdp = run_distributed(
        _train_rank,
        2,
        recipe,
        _overrides(emoji_subset, tmp_path, "fsdp", B, **extra, **{"train.fsdp": "true"}),
    )
    assert (tmp_path / "fsdp" / "shards").is_dir() and not (tmp_path / "ddp" / "shards").exists()
    # SLIP's SimCLR head (Linear -> BatchNorm) gets float-noise gradients on elements with ~no true
    # gradient, whose Adam steps' signs depend on the reduction order (see ATOL in test_scale.py): a
    # few of its 16.7M head weights may differ by up to 2 x steps x lr; every loss still agrees
    slip = recipe == "slip"
    w_fsdp, w_ddp = _weights(tmp_path / "fsdp"), _weights(tmp_path / "ddp")
    lr = load_config(recipe).train.lr
    _assert_same_run(fsdp[0], ddp[0], w_fsdp, w_ddp, 1e-3 if slip else 1e-5, 4 if slip else 0, lr)


@pytest.mark.slow
@pytest.mark.distributed
def test_sharded_checkpoint_resumes_on_two_and_one_process_and_loads(emoji_subset, tmp_path):
    """A 2-process FSDP run stopped after 2 steps and resumed for a third, on 2 processes (FSDP) and on
    1 process (the global batch, unsharded), ends where the uninterrupted run does; the result loads
    with ``synclip.load`` and exports to an open_clip file."""
    import shutil

    from synclip.api import load
    from synclip.cli import main

    fsdp = {"train.fsdp": "true"}
    straight = run_distributed(
        _train_rank, 2, "clip", _overrides(emoji_subset, tmp_path, "straight", B, **fsdp)
    )
    first = _overrides(emoji_subset, tmp_path, "two", B, **fsdp, **{"train.max_steps": 2})
    run_distributed(_train_rank, 2, "clip", first)
    shutil.copytree(tmp_path / "two", tmp_path / "one")
    resume = {**fsdp, "train.resume": "auto"}
    two = run_distributed(_train_rank, 2, "clip", _overrides(emoji_subset, tmp_path, "two", B, **resume))
    one = train(load_config("clip", _overrides(emoji_subset, tmp_path, "one", 2 * B, **resume)))

    reference = _weights(tmp_path / "straight")
    _assert_same_run(two[0][-1:], straight[0][-1:], _weights(tmp_path / "two"), reference)
    _assert_same_run(read_metrics(one)[-1:], straight[0][-1:], _weights(one), reference)
    assert [p.name for p in (tmp_path / "two" / "shards").iterdir()] == ["step_00000003"]  # older ones go

    model = load(tmp_path / "two" / "checkpoint.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key
    out = tmp_path / "exported.pt"
    assert main(["export", str(tmp_path / "two" / "checkpoint.pt"), str(out)]) == 0
    exported = torch.load(out, weights_only=True)["state_dict"]
    assert set(exported) == set(model.state_dict()) | {"logit_scale"}
    assert float(exported["logit_scale"]) == float(reference["recipe.objectives.clip.logit_scale"])
    assert all(torch.equal(exported[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_checkpoint_resumes_sharded(emoji_subset, tmp_path):
    """A DDP run's whole checkpoint continued with ``train.fsdp=true`` on 2 processes ends where the
    uninterrupted DDP run does: weights, objectives and AdamW moments are sharded on load."""
    straight = run_distributed(_train_rank, 2, "clip", _overrides(emoji_subset, tmp_path, "straight", B))
    run_distributed(
        _train_rank, 2, "clip", _overrides(emoji_subset, tmp_path, "mixed", B, **{"train.max_steps": 2})
    )
    resume = {"train.fsdp": "true", "train.resume": "auto"}
    mixed = run_distributed(_train_rank, 2, "clip", _overrides(emoji_subset, tmp_path, "mixed", B, **resume))
    _assert_same_run(
        mixed[0][-1:], straight[0][-1:], _weights(tmp_path / "mixed"), _weights(tmp_path / "straight")
    )
