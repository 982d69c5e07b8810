"""Self-distillation (DINO / SILC), masked prediction (iBOT / TIPS), the multi-crop views and objectives
switched on late (SigLIP 2): the formulas by hand, on real emoji batches through a micro ViT."""

import math

import pytest
import torch
import torch.nn.functional as F

from small_options import SMALL, shrink
from synclip.config import load_config
from synclip.data.views.multi_crop import local_size
from synclip.losses.self_distill import cross_view_loss, linear_warmup, masked_patch_loss, teacher_probs
from synclip.objectives.base import Encoded
from synclip.recipe import Pretrainer, Recipe
from synclip.train.data import resolve_views

VIEWS = {"image_local": {"num": 3}}  # fewer local crops than DINO's 8, to stay fast


def test_centering_and_sharpening_match_the_formula():
    logits, center = torch.randn(4, 2, 8) * 0.1, torch.randn(1, 8) * 0.1
    q = teacher_probs(logits, center, 0.04)
    by_hand = torch.exp((logits.double() - center.double()) / 0.04)
    assert torch.allclose(q.double(), by_hand / by_hand.sum(-1, keepdim=True), atol=1e-6)
    # sharpening: a lower temperature concentrates the mass; centering: a shared shift changes nothing
    assert q.max(-1).values.mean() > teacher_probs(logits, center, 1.0).max(-1).values.mean()
    assert torch.allclose(teacher_probs(logits + 3.0, center + 3.0, 0.04), q, atol=1e-6)
    # DINO's warm-up of the teacher temperature: linear, then flat
    assert linear_warmup(0.04, 0.07, 0.3, 0.15) == pytest.approx(0.055)
    assert linear_warmup(0.04, 0.07, 0.3, 0.9) == 0.07 and linear_warmup(0.04, 0.07, 0.0, 0.0) == 0.07


def test_cross_view_loss_skips_a_crop_against_itself():
    student, teacher = torch.randn(5, 4, 8), F.softmax(torch.randn(5, 2, 8), -1)  # 2 global + 2 local
    terms = []
    for t in range(2):
        for s in range(4):
            if s != t:
                terms.append(-(teacher[:, t] * F.log_softmax(student[:, s] / 0.1, -1)).sum(-1).mean())
    assert cross_view_loss(student, teacher, 0.1).item() == pytest.approx(
        torch.stack(terms).mean().item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="student crop besides"):
        cross_view_loss(student[:, :1], teacher[:, :1], 0.1)


def _distill(micro_model, make_batch, **options):
    recipe = Recipe(micro_model, shrink({"self_distill": options}))
    objective = recipe.objectives["self_distill"]
    names = sorted({v for vs in recipe.views().values() for v in vs})
    return recipe, objective, make_batch(micro_model, names, VIEWS, n=8)


def test_self_distill_centres_the_teacher_and_trains_only_the_student(micro_model, make_batch):
    recipe, objective, batch = _distill(micro_model, make_batch)
    pretrainer = Pretrainer(micro_model, recipe).train()
    assert batch["pairs"]["image_global"].shape == (8, 2, 3, 32, 32)
    assert batch["pairs"]["image_local"].shape == (8, 3, 3, 16, 16)  # 96/224 of 32 px, in whole patches
    with torch.no_grad():  # the teacher's logits on the global crops, before the step
        expected = objective.teacher(batch["pairs"]["image_global"])["image"].flatten(0, 1).mean(0)  # (K,)
    out = pretrainer(batch)
    assert set(out) >= {
        "self_distill_teacher_entropy",
        "self_distill_usage_entropy",
        "self_distill_prototypes_used",
    }
    out["loss"].backward()
    # DINO's centre: c = 0.9 * 0 + 0.1 * the batch mean of the teacher's logits
    assert torch.allclose(objective.center[0], 0.1 * expected, atol=1e-6)
    assert all(p.grad is None for p in objective.teacher.parameters())
    assert micro_model.visual.conv1.weight.grad is not None and objective.head.mlp[0].weight.grad is not None
    # the loss is DINO's: the teacher's centred, sharpened globals against every other student crop
    enc = Encoded(micro_model, batch)
    student = torch.cat([objective._crops(enc, "image_global"), objective._crops(enc, "image_local")], 1)
    teacher = objective.teacher(batch["pairs"]["image_global"])["image"]
    q = teacher_probs(teacher, torch.zeros_like(objective.center), 0.04)
    assert out["self_distill_loss"].item() == pytest.approx(cross_view_loss(student, q, 0.1).item(), rel=1e-5)


def test_teacher_follows_the_student_with_the_scheduled_momentum(micro_model, make_batch):
    recipe, objective, _ = _distill(micro_model, make_batch, momentum=0.9)
    recipe.set_progress(5, 10)  # half-way: m = 1 - 0.1 * (1 + cos(pi / 2)) / 2 = 0.95
    before = objective.teacher.module.visual.conv1.weight.clone()
    with torch.no_grad():
        micro_model.visual.conv1.weight.add_(1.0)
    recipe.post_step()
    m = 1 - 0.1 * (1 + math.cos(math.pi * 0.5)) / 2
    expected = m * before + (1 - m) * micro_model.visual.conv1.weight
    assert torch.allclose(objective.teacher.module.visual.conv1.weight, expected, atol=1e-6)


@pytest.mark.parametrize("before_start", ["copy", "ema"])
def test_a_late_teacher_starts_as_the_student_copy_or_follows_by_ema(micro_model, make_batch, before_start):
    """SigLIP 2 initialises the teacher from the student when the losses start (copy, the default);
    "ema" keeps the teacher following the student from step 0."""
    recipe, objective, _ = _distill(
        micro_model, make_batch, momentum=0.9, start_fraction=0.8, teacher_before_start=before_start
    )
    weight = lambda: objective.teacher.module.visual.conv1.weight  # noqa: E731
    student = micro_model.visual.conv1.weight
    for step in (0, 7):  # before 80% of 10 steps
        recipe.set_progress(step, 10)
        before = weight().clone()
        with torch.no_grad():
            student.add_(1.0)
        recipe.post_step()
        expected = student if before_start == "copy" else 0.9 * before + 0.1 * student  # span progress 0
        assert torch.allclose(weight(), expected, atol=1e-6), step
    recipe.set_progress(8, 10)  # the first step it runs: from here an EMA whatever the option
    before = weight().clone()
    with torch.no_grad():
        student.add_(1.0)
    recipe.post_step()
    assert torch.allclose(weight(), 0.9 * before + 0.1 * student, atol=1e-6)
    with pytest.raises(ValueError, match="teacher_before_start must be one of"):
        Recipe(micro_model, shrink({"self_distill": {"teacher_before_start": "reset"}}))


def test_masked_prediction_on_a_global_crop_masks_its_first_crop(micro_model, make_batch):
    """SigLIP 2: masked prediction on the one global view, not the image-text view."""
    options = {"image_view": "image_global"}
    recipe = Recipe(micro_model, shrink({"masked_prediction": options}))
    objective = recipe.objectives["masked_prediction"]
    views = {"image_global": {"num": 1}, "image_mask": {"ratio": 0.5}}
    batch = make_batch(micro_model, ["image_global", "image_mask"], views, n=4)
    assert batch["pairs"]["image_global"].shape == (4, 1, 3, 32, 32)
    out = Encoded(micro_model, batch).memo(("x",), objective._encode)
    with torch.no_grad():
        whole = objective.teacher(batch["pairs"]["image_global"][:, 0])["patches"]  # (B, P, K)
    assert torch.equal(out["teacher"], whole)


def test_masked_prediction_counts_only_masked_positions(micro_model, make_batch):
    student, teacher = torch.randn(2, 16, 8), F.softmax(torch.randn(2, 16, 8), -1)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :6] = True
    loss = masked_patch_loss(student, teacher, mask, 0.1)
    changed = student.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), 8) * 10  # unmasked positions: no effect
    assert masked_patch_loss(changed, teacher, mask, 0.1) == loss
    changed[0, 0] += 5.0  # a masked position: an effect
    assert masked_patch_loss(changed, teacher, mask, 0.1) != loss
    per_patch = -(teacher * F.log_softmax(student / 0.1, -1)).sum(-1)  # (B, P)
    assert loss.item() == pytest.approx(per_patch[:, :6].mean().item(), rel=1e-6)

    recipe = Recipe(micro_model, shrink({"masked_prediction": {}}))
    objective = recipe.objectives["masked_prediction"]
    batch = make_batch(micro_model, ["image", "image_mask"], {"image_mask": {"ratio": 0.5}}, n=4)
    out = Pretrainer(micro_model, recipe).train()(batch)
    memo = Encoded(micro_model, batch).memo(("x",), objective._encode)
    mask = batch["pairs"]["image_mask"]
    assert int(mask.sum()) == 4 * 8  # half of the 16 patches of each image
    q = teacher_probs(memo["teacher"], torch.zeros(1, 1, SMALL["masked_prediction"]["prototypes"]), 0.04)
    by_hand = -(q * F.log_softmax(memo["student"] / 0.1, -1)).sum(-1)[mask].mean()  # warm-up starts at 0.04
    assert out["masked_prediction_loss"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    out["masked_prediction_loss"].backward()
    assert objective.mask_token.grad is not None and all(
        p.grad is None for p in objective.teacher.parameters()
    )


def test_siglip2_late_objectives_are_off_before_80_percent_and_on_after(micro_model, make_batch):
    cfg = load_config("siglip2", [])
    recipe = Recipe(micro_model, shrink(cfg.objectives))
    names = sorted({v for vs in recipe.views().values() for v in vs})
    assert {"image_global", "image_local", "image_mask"} <= set(names)  # built from step 0
    batch = make_batch(micro_model, names, {**VIEWS, "image_mask": {"ratio": 0.5}}, n=4)
    pretrainer = Pretrainer(micro_model, recipe).train()
    assert recipe.may_leave_unused()  # DDP: the late objectives' parameters get no gradient before 80%
    late = ("self_distill_loss", "masked_prediction_loss")
    for step, on in ((0, False), (79, False), (80, True), (99, True)):
        pretrainer.set_progress(step, 100)
        out = pretrainer(batch)
        assert all((key in out) == on for key in late), step
        assert "siglip_loss" in out and "caption_loss" in out
    expected = sum(
        recipe.weights[n] * out[f"{n}_loss"] for n in ("siglip", "caption", *[k[:-5] for k in late])
    )
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    # SigLIP 2's weights 1 and 0.25 times its per-size factor for B (0.25)
    assert recipe.weights["self_distill"] == 0.25 and recipe.weights["masked_prediction"] == 0.0625
    # the momentum schedule runs over the objective's own 20%: at 90% of the run it is half-way
    assert recipe.objectives["self_distill"].span_progress == pytest.approx(0.95)
    with pytest.raises(ValueError, match="start_fraction must lie in"):
        Recipe(micro_model, shrink({"clip": {}, "self_distill": {"start_fraction": 1.0}}))


def test_local_crops_are_a_fraction_of_the_image_in_whole_patches():
    assert (
        local_size(224, 96 / 224, 16) == 96
        and local_size(48, 96 / 224, 8) == 24
        and local_size(32, 0.1, 8) == 8
    )
    with pytest.raises(ValueError, match="multiple of the patch size"):
        resolve_views(["image_local"], {"image_local": {"size": 12}}, 32, 8)
    assert resolve_views(["image_global"], {}, 32, 8) == {"image_global": {"size": 32}}
