"""Masked image modelling: mim_distill with frozen teachers, and mae beside CLIP.

Only masked positions count; teachers stay frozen, out of the optimizer and out of checkpoints, and
give targets on the student's patch grid; gradient accumulation matches one big batch; both
objectives train end to end through ``synclip.train`` on real emoji pairs.
"""

import contextlib
import json

import pytest
import timm
import torch
from torch import nn

from run_helpers import small_run_overrides
from synclip.config import load_config
from synclip.data.views.image import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.losses.mae import masked_patch_mse
from synclip.models import create_model, open_clip_state_dict
from synclip.models.efficientnet_lite import MEAN, STD
from synclip.models.teacher import Frozen, align_to_grid, build_teacher
from synclip.objectives import Encoded
from synclip.recipe import Pretrainer, Recipe
from synclip.train.accumulate import TrainForward, accumulate_backward
from synclip.train.loop import train
from synclip.train.optim import create_optimizer


@pytest.fixture(scope="module")
def clip_checkpoint(emoji_subset, tmp_path_factory):
    """A synclip checkpoint of a 3-step CLIP run of micro-vit-32: the teacher of later runs."""
    out = tmp_path_factory.mktemp("clip_teacher")
    cfg = load_config("clip", small_run_overrides(emoji_subset, out, **{"train.max_steps": 3}))
    return train(cfg) / "checkpoint.pt"


class Shifted(nn.Module):
    """A teacher whose target at (row, patch) is moved by 5 in every channel."""

    def __init__(self, teacher: nn.Module, row: int, patch: int):
        super().__init__()
        self.teacher, self.row, self.patch = teacher, row, patch

    def forward(self, images, grid, mean, std):
        target = self.teacher(images, grid, mean, std).clone()  # (B, P, C)
        target[self.row, self.patch] += 5.0
        return target


def test_only_masked_positions_count_in_mim_distill(clip_checkpoint, micro_model, make_batch):
    recipe = Recipe(micro_model, {"mim_distill": {"teacher": str(clip_checkpoint)}})
    objective = recipe.objectives["mim_distill"]
    batch = make_batch(micro_model, ["image", "image_mask"], n=4)
    mask = batch["pairs"]["image_mask"]  # (4, 16)
    assert mask.shape == (4, 16) and (mask.sum(1) == 6).all()  # 40% of the 4 x 4 grid
    teacher = objective.teacher.module

    def loss():
        return objective(Encoded(micro_model, batch), batch)["loss"].item()

    base = loss()
    objective.teacher = Frozen(Shifted(teacher, 0, int((~mask[0]).nonzero()[0])))
    assert loss() == pytest.approx(base, abs=1e-7)
    objective.teacher = Frozen(Shifted(teacher, 0, int(mask[0].nonzero()[0])))
    assert abs(loss() - base) > 1e-4


def test_only_masked_patches_count_in_mae(micro_model, make_batch):
    pred, target = torch.randn(2, 16, 192), torch.randn(2, 16, 192)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :12] = True
    base = masked_patch_mse(pred, target, mask)
    moved = target.clone()
    moved[1, 14] += 5.0  # a visible patch
    assert torch.equal(masked_patch_mse(pred, moved, mask), base)
    moved[1, 3] += 5.0  # a masked one
    assert masked_patch_mse(pred, moved, mask) > base

    # end to end: pixels of a patch masked in every row are never encoded, but they are the target
    recipe = Recipe(micro_model, {"mae": {"decoder_width": 32}})
    batch = make_batch(micro_model, ["image", "image_mask_mae"], n=4)
    mask = batch["pairs"]["image_mask_mae"]  # (4, 16), 12 masked per row
    patch = int(mask.all(0).nonzero()[0])
    before = recipe.objectives["mae"](Encoded(micro_model, batch), batch)["loss"]
    r, c = divmod(patch, 4)
    batch["pairs"]["image"][:, :, r * 8 : (r + 1) * 8, c * 8 : c * 8 + 4] = 2.0  # half the patch
    after = recipe.objectives["mae"](Encoded(micro_model, batch), batch)["loss"]
    assert not torch.isclose(before, after)


def test_teacher_is_frozen_and_out_of_optimizer_and_checkpoint(clip_checkpoint, micro_model, make_batch):
    pretrainer = Pretrainer(
        micro_model, Recipe(micro_model, {"mim_distill": {"teacher": str(clip_checkpoint)}})
    )
    teacher = pretrainer.recipe.objectives["mim_distill"].teacher.module
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimizer = create_optimizer(pretrainer, 1e-2, 0.1, (0.9, 0.98), 1e-6)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in in_optimizer for p in teacher.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())
    student = {k: v.clone() for k, v in micro_model.state_dict().items()}
    batch = make_batch(micro_model, pretrainer.recipe.views()["pairs"], n=8)
    pretrainer.train()
    for _ in range(3):
        optimizer.zero_grad()
        pretrainer(batch)["loss"].backward()
        optimizer.step()
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, frozen[k]) for k, v in teacher.state_dict().items())  # bit-identical
    assert any(not torch.equal(v, student[k]) for k, v in micro_model.state_dict().items())
    # what a checkpoint saves: the towers (open_clip layout) and the objective's own weights only
    assert set(open_clip_state_dict(micro_model)) == set(open_clip_state_dict(create_model("micro-vit-32")))
    assert set(pretrainer.recipe.state_dict()) == {
        "objectives.mim_distill.mask_token",
        "objectives.mim_distill.head.weight",
        "objectives.mim_distill.head.bias",
    }


def test_efficientnet_teacher_renormalises_and_lands_on_the_student_grid():
    raw = torch.rand(2, 3, 128, 128)  # [0, 1] pixels
    mean, std = (
        torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1),
        torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1),
    )
    student_input = (raw - mean) / std
    teacher = build_teacher("efficientnet-lite0", size=128)
    targets = teacher(student_input, (4, 4), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)  # 128 px / 32 = 4 x 4
    with torch.no_grad():
        own = (raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        expected = teacher.net.forward_intermediates(own, indices=[-1], intermediates_only=True)[0]
    assert targets.shape == (2, 16, 320) and not targets.requires_grad
    assert torch.allclose(targets, expected.flatten(2).transpose(1, 2), atol=1e-4)
    # a coarser teacher map (64 px -> 2 x 2) is interpolated, a finer one (224 px -> 7 x 7) pooled
    images = torch.randn(2, 3, 32, 32)
    for size in (64, 224):
        out = build_teacher("efficientnet-lite0", size=size)(
            images, (4, 4), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        )
        assert out.shape == (2, 16, 320) and torch.isfinite(out).all()
    stage3 = build_teacher("efficientnet-lite0", layer=3, size=64)
    assert stage3(images, (4, 4), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD).shape == (2, 16, 112)


def test_vit_teachers_of_another_patch_grid_land_on_the_student_grid(tmp_path):
    images = torch.randn(2, 3, 32, 32)  # micro-vit-32 student: 4 x 4 patches of 8 px
    torch.save(open_clip_state_dict(create_model("tiny-vit-48")), tmp_path / "tiny.pt")  # 6 x 6 grid
    projected = build_teacher(str(tmp_path / "tiny.pt"), "open_clip:tiny-vit-48")
    raw = build_teacher(str(tmp_path / "tiny.pt"), "open_clip:tiny-vit-48", projected=False)
    assert projected(images, (4, 4), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD).shape == (2, 16, 256)
    assert raw(images, (4, 4), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD).shape == (2, 16, 192)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False)  # 14 x 14 patches of 16 px
    torch.save(vit.state_dict(), tmp_path / "vit.pt")
    teacher = build_teacher(str(tmp_path / "vit.pt"), "timm:vit_tiny_patch16_224")
    assert teacher.size == 224 and teacher(images, (4, 4), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD).shape == (
        2,
        16,
        192,
    )
    feats = torch.randn(1, 8, 14, 14)
    assert torch.allclose(align_to_grid(feats, (2, 2)), feats.view(1, 8, 2, 7, 2, 7).mean((3, 5)), atol=1e-6)


def test_bad_teacher_options_are_clear_errors(tmp_path, micro_model):
    with pytest.raises(ValueError, match="needs a teacher"):
        Recipe(micro_model, {"mim_distill": {}})
    with pytest.raises(FileNotFoundError, match="neither"):
        build_teacher(str(tmp_path / "missing.pt"))
    torch.save(open_clip_state_dict(micro_model), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="teacher_model"):
        build_teacher(str(tmp_path / "weights.pt"))  # plain weights need their architecture
    with pytest.raises(ValueError, match="teacher_model must be"):
        build_teacher(str(tmp_path / "weights.pt"), "micro-vit-32")
    with pytest.raises(ValueError, match="takes 32 px"):
        build_teacher(str(tmp_path / "weights.pt"), "open_clip:micro-vit-32", size=64)


def test_gradient_accumulation_matches_one_big_batch(clip_checkpoint, make_batch):
    def pretrainer():
        torch.manual_seed(0)
        model = create_model("micro-vit-32")
        mim = {"teacher": str(clip_checkpoint)}
        recipe = Recipe(model, {"clip": {}, "mim_distill": mim, "mae": {"decoder_width": 32}})
        return Pretrainer(model, recipe).train()

    ref = pretrainer()
    batch = make_batch(ref.model, ref.recipe.views()["pairs"], n=8)
    out = ref(batch)
    out["loss"].backward()
    acc = pretrainer()
    got = accumulate_backward(
        TrainForward(acc), acc, batch, 2, lambda loss: loss.backward(), contextlib.nullcontext
    )
    assert torch.allclose(got["loss"], out["loss"], atol=1e-5)
    expected = dict(ref.named_parameters())
    for name, p in acc.named_parameters():
        if p.grad is not None:
            assert torch.allclose(p.grad, expected[name].grad, rtol=1e-3, atol=1e-6), name
    assert acc.recipe.objectives["mim_distill"].mask_token.grad.abs().sum() > 0


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_mim_distill_trains_and_resumes_with_a_clip_checkpoint_teacher(
    emoji_subset, clip_checkpoint, tmp_path
):
    overrides = small_run_overrides(
        emoji_subset, tmp_path, **{"objectives": "{mim_distill: {teacher: " + str(clip_checkpoint) + "}}"}
    )
    run_dir = train(load_config("clip", [*overrides, "train.max_steps=4"]))
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    assert not any("teacher" in k for k in [*state["model"], *state["recipe"]])
    run_dir = train(load_config("clip", [*overrides, "train.max_steps=6", "train.resume=auto"]))
    rows = _rows(run_dir)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(-1 <= r["mim_distill_loss"] <= 1 for r in rows)  # -cosine
    assert rows[-1]["mim_distill_loss"] < rows[0]["mim_distill_loss"]


def test_clip_plus_mae_trains_end_to_end(emoji_subset, tmp_path):
    overrides = small_run_overrides(
        emoji_subset,
        tmp_path,
        **{"objectives": "{clip: {}, mae: {weight: 1.0, decoder_width: 32}}", "train.max_steps": 8},
    )
    rows = _rows(train(load_config("clip", overrides)))
    assert {"clip_loss", "mae_loss"} <= set(rows[-1])
    assert rows[-1]["mae_loss"] < rows[0]["mae_loss"]
    assert rows[-1]["loss"] == pytest.approx(rows[-1]["clip_loss"] + rows[-1]["mae_loss"], rel=1e-4)


def test_mim_distill_undoes_the_runs_own_image_normalisation():
    """The teacher must see pixels: mim_distill un-normalises with the run's image view statistics."""
    from synclip.config import load_config
    from synclip.objectives.base import RunContext
    from synclip.objectives.mim_distill import MimDistill

    overrides = ["views.image.mean=[0.5,0.5,0.5]", "views.image.std=[0.25,0.25,0.25]"]
    cfg = load_config("clip", [*overrides, "objectives={mim_distill: {teacher: efficientnet-lite0}}"])
    filled = MimDistill.prepare(cfg.objectives["mim_distill"], RunContext(cfg.views))
    assert filled["image_mean"] == (0.5, 0.5, 0.5) and filled["image_std"] == (0.25, 0.25, 0.25)
    given = load_config(
        "clip", [*overrides, "objectives={mim_distill: {teacher: x, image_mean: [0.1, 0.1, 0.1]}}"]
    )
    assert MimDistill.prepare(given.objectives["mim_distill"], RunContext(given.views))["image_mean"] == [
        0.1,
        0.1,
        0.1,
    ]
