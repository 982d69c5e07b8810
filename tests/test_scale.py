"""Scale: a 2-process gloo run equals one process on the same global batch; accumulation inside a run."""

import os

import pytest
import torch

from dist_utils import run_distributed
from run_helpers import small_run_overrides
from small_options import SMALL
from synclip.config import load_config
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.train.logging import read_metrics
from synclip.train.loop import train

pytestmark = pytest.mark.distributed
B = 16  # per rank


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
            "model.name": "micro-vit-32",
            # Parameters with no true gradient (attention key biases: softmax ignores a shift) get float
            # noise that Adam scales up to lr-sized steps of either sign, unlike in 1 vs 2 processes;
            # clipping the gradient norm (the default before issue 19) keeps that noise under Adam's eps.
            "train.grad_clip_norm": 1.0,
            **extra,
        },
    )


def _train_rank(rank, world, recipe, overrides):
    train(load_config(recipe, overrides))
    return rank


def _state(run_dir):
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    return {**state["model"], **{f"recipe.{k}": v for k, v in state["recipe"].items()}}, read_metrics(run_dir)


FMNIST = "{labels: {kind: fashion_mnist}}"
SMALL_DISTILL = {f"objectives.self_distill.{k}": v for k, v in SMALL["self_distill"].items()}
SMALL_MASKED = {f"objectives.masked_prediction.{k}": v for k, v in SMALL["masked_prediction"].items()}
CASES = {  # recipe (or recipe/variant) -> extra overrides
    "clip": {},
    "clip/batched": {"data.augment": "batched"},  # image views augmented batch-wide from per-sample params
    "siglip": {},  # the sigmoid loss over local images x gathered texts, divided by the local batch
    "slip": {},  # data.augment=batched, the recipe's default: two SimCLR crops jittered on the device
    "slip/pil": {"data.augment": "pil"},  # each sample augmented in a worker
    "declip": {},
    "simclr": {},  # image only: the text tower gets no gradient, DDP must be told (see ATOL)
    "classifier": {"data.sources": FMNIST},  # image only, with a vocabulary
    "lit": {"model.name": "effnet-lite0-text"},  # locked BatchNorm tower: statistics stay as loaded
    # the EMA teacher picks the kept patches; small heads (their BatchNorm is global, as SimCLR's)
    "aclip": {
        f"objectives.aclip.{k}": 32 for k in ("simclr_mlp_dim", "simclr_dim", "byol_mlp_dim", "byol_dim")
    },
    # EMA teachers, centres all-reduced over ranks; small heads and 2 local crops to stay fast
    "silc": {**SMALL_DISTILL, "views.image_local.num": 2},
    "silc/batched": {**SMALL_DISTILL, "views.image_local.num": 2, "data.augment": "batched"},  # multi-crop
    "tips": {**SMALL_DISTILL, **SMALL_MASKED, "views.image_local.num": 2},
    # the late objectives switched on from step 2 of 8 (not 80%), so that 3 steps see both phases
    "siglip2": {
        **SMALL_DISTILL,
        **SMALL_MASKED,
        "views.image_local.num": 2,
        "objectives.self_distill.start_fraction": 0.2,
        "objectives.masked_prediction.start_fraction": 0.2,
    },  # CapPa's parallel prediction on: each caption's draw is per sample, from the loader's seeds
}


# SimCLR's head starts with Linear -> BatchNorm, which cancels any shift of the pooled feature, so
# ln_post.bias gets a gradient of float noise (~1e-9); Adam turns noise of that size into steps of
# about its eps-limited size (~1e-5) whose sign differs between 1 and 2 processes. SLIP carries the
# same head: on a fresh environment (open_clip 3.3.0, torch 2.14.1) a few of its head weights and one
# attention weight differ by up to 3.6e-4 after 3 steps, while every loss agrees to 1e-6.
ATOL = {"simclr": 1e-4, "slip": 1e-3, "aclip": 1e-3}  # aclip carries the SimCLR head too


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_equal_one_process_on_the_global_batch(case, emoji_subset, tmp_path):
    recipe = case.split("/")[0]
    one = _overrides(emoji_subset, tmp_path, "one", 2 * B, **CASES[case])
    two = _overrides(emoji_subset, tmp_path, "two", B, **CASES[case])
    run_distributed(_train_rank, 2, recipe, two)
    single = train(load_config(recipe, one))

    (w2, m2), (w1, m1) = _state(tmp_path / "two"), _state(single)
    assert [r["step"] for r in m2] == [r["step"] for r in m1] == [1, 2, 3]
    for a, b in zip(m2, m1):
        for key in a:
            if key.endswith("loss"):
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (a["step"], key)
    assert w2.keys() == w1.keys()
    for key in w1:
        if not isinstance(w1[key], torch.Tensor):  # a classifier's vocabulary
            assert w2[key] == w1[key], key
        elif w1[key].is_floating_point():
            assert torch.allclose(w2[key], w1[key], rtol=1e-3, atol=ATOL.get(recipe, 1e-5)), key


@pytest.mark.slow
def test_accumulation_in_a_run_equals_the_big_batch(emoji_subset, tmp_path):
    big = train(load_config("clip", _overrides(emoji_subset, tmp_path, "big", 2 * B)))
    acc = train(load_config("clip", _overrides(emoji_subset, tmp_path, "acc", B, **{"train.accum_steps": 2})))
    (wa, ma), (wb, mb) = _state(acc), _state(big)
    for a, b in zip(ma, mb):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for key in wb:
        if wb[key].is_floating_point():
            assert torch.allclose(wa[key], wb[key], rtol=1e-3, atol=1e-5), key


def test_grad_checkpointing_run(emoji_subset, tmp_path):
    """``model.grad_checkpointing`` trains (two steps on the CPU); its gradient is tested in test_accumulate."""
    extra = {"model.grad_checkpointing": "true", "train.max_steps": 2}
    run_dir = train(load_config("clip", _overrides(emoji_subset, tmp_path, "ckpt", B, **extra)))
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2]


@pytest.mark.skipif(
    not os.environ.get("SYNCLIP_TEST_COMPILE"),
    reason="torch.compile of micro-vit-32 takes ~110 s on a 2-core CPU (passes); set SYNCLIP_TEST_COMPILE=1",
)
def test_compile_runs_two_steps(emoji_subset, tmp_path):
    extra = {"train.compile": "true", "model.grad_checkpointing": "true", "train.max_steps": 2}
    run_dir = train(load_config("clip", _overrides(emoji_subset, tmp_path, "compiled", B, **extra)))
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2]
