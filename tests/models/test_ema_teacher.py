"""The EMA teacher: DINO's update and momentum schedule, kept out of the optimizer and gradients, saved in
checkpoints and restored bit for bit on resume; objectives learn the training progress from the loop."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from run_helpers import small_run_overrides
from synclip.config import load_config
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.models import create_model
from synclip.models.ema_teacher import EmaTeacher
from synclip.objectives.base import Encoded, Objective, Read
from synclip.recipe import Pretrainer, Recipe
from synclip.registry import OBJECTIVES
from synclip.train.loop import train
from synclip.train.optim import create_optimizer


def _net():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))


def test_momentum_follows_dino_cosine_schedule():
    teacher = EmaTeacher(_net(), start=0.996, end=1.0)
    assert teacher.momentum(0.0) == pytest.approx(0.996)
    assert teacher.momentum(1.0) == pytest.approx(1.0)
    # DINO's utils.cosine_scheduler(0.996, 1, ...): final + (base - final) * (1 + cos(pi * t)) / 2
    for t in (0.25, 0.5, 0.8):
        assert teacher.momentum(t) == pytest.approx(1 + (0.996 - 1) * (1 + math.cos(math.pi * t)) / 2)
    assert teacher.momentum(-1.0) == teacher.momentum(0.0) and teacher.momentum(3.0) == teacher.momentum(1.0)
    with pytest.raises(ValueError, match="start <= end"):
        EmaTeacher(_net(), start=0.9, end=0.5)


def test_update_matches_a_hand_computation_and_copies_buffers():
    student = _net()
    teacher = EmaTeacher(student, start=0.9, end=1.0)
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
        student[1].running_mean.fill_(0.5)
    progress = 0.3
    m = 1 - 0.1 * (1 + math.cos(math.pi * progress)) / 2
    teacher.update(student, progress)
    for name, param in student.named_parameters():
        expected = m * before[name] + (1 - m) * param.detach()
        assert torch.allclose(teacher.module.get_parameter(name), expected, atol=1e-7, rtol=0), name
    assert torch.equal(teacher.module[1].running_mean, torch.full((8,), 0.5))  # buffers copied, not averaged
    with pytest.raises(ValueError, match="structure"):
        teacher.update(nn.Linear(4, 3), 0.5)


def test_teacher_gets_no_gradient_is_not_optimized_and_stays_in_eval_mode():
    class Owner(nn.Module):
        def __init__(self):
            super().__init__()
            self.student = _net()
            self.teacher = EmaTeacher(self.student)

    owner = Owner().train()
    assert not owner.teacher.training and not owner.teacher.module[1].training
    teacher_params = {id(p) for p in owner.teacher.parameters()}
    optimizer = create_optimizer(owner, 1e-3, 0.1, (0.9, 0.98), 1e-6)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized and not optimized & teacher_params
    x = torch.randn(5, 4)
    target = owner.teacher(x)
    assert not target.requires_grad  # run under no_grad
    loss = (owner.student(x) - owner.teacher.module(x)).pow(2).mean()  # even outside no_grad
    loss.backward()
    assert all(p.grad is None for p in owner.teacher.parameters())
    assert all(p.grad is not None for p in owner.student.parameters())


SEEN: list[tuple[int, int]] = []  # (step, total_steps) each forward of toy_ema saw


@OBJECTIVES.register("toy_ema")
class ToyEma(Objective):
    """Pulls the student's image features towards an EMA teacher's: enough to exercise the teacher
    through the training loop (progress, post_step, checkpoints)."""

    def __init__(self, model: nn.Module, source: str = "pairs"):
        super().__init__(model, source)
        self._student = [model.visual]  # a plain list: no second registration of the tower
        self.teacher = EmaTeacher(model.visual, start=0.9)

    def reads(self) -> list[Read]:
        return [Read("image", "image", self.source)]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        SEEN.append((self.step, self.total_steps))
        student = enc.image("image", self.source)["features"]  # (B, D)
        target = F.normalize(self.teacher(batch[self.source]["image"]), dim=-1)  # (B, D), projected
        return {"loss": -(student * target).sum(-1).mean()}

    @torch.no_grad()
    def post_step(self) -> None:
        self.teacher.update(self._student[0], self.progress)


def test_objectives_learn_the_progress_through_the_pretrainer():
    torch.manual_seed(0)
    micro_model = create_model("micro-vit-32")
    recipe = Recipe(micro_model, {"toy_ema": {}})
    pretrainer = Pretrainer(micro_model, recipe)
    assert recipe.objectives["toy_ema"].progress == 0.0  # before training
    pretrainer.set_progress(3, 12)
    assert recipe.objectives["toy_ema"].progress == 0.25
    with pytest.raises(ValueError, match="step >= 0"):
        pretrainer.set_progress(-1, 12)


def _run(emoji_subset, out_dir, name, *extra):
    overrides = small_run_overrides(emoji_subset, out_dir, **{"train.name": name, "train.epochs": 1})
    return train(load_config("clip", [*overrides, "objectives={clip: {}, toy_ema: {}}", *extra]))


def test_teacher_state_survives_save_and_resume_bit_identically(emoji_subset, tmp_path):
    SEEN.clear()
    straight = _run(emoji_subset, tmp_path, "straight", "train.max_steps=4")
    assert SEEN == [(step, 8) for step in range(4)]  # 256 pairs, batch 32: one epoch is 8 steps
    _run(emoji_subset, tmp_path, "resumed", "train.max_steps=2")
    resumed = _run(emoji_subset, tmp_path, "resumed", "train.max_steps=4", "train.resume=auto")
    logged = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert logged == [2, 4]  # the second run went on from step 2, it did not start again
    a = read_synclip_checkpoint(straight / "checkpoint.pt")["recipe"]
    b = read_synclip_checkpoint(resumed / "checkpoint.pt")["recipe"]
    teacher_keys = [k for k in a if k.startswith("objectives.toy_ema.teacher.module.")]
    assert teacher_keys and a.keys() == b.keys()
    for key in teacher_keys:
        assert torch.equal(a[key], b[key]), key
    # and the teacher moved: it is an average of trained students, not the initial copy
    model = read_synclip_checkpoint(straight / "checkpoint.pt")["model"]
    key = "objectives.toy_ema.teacher.module.conv1.weight"
    assert not torch.equal(a[key], model["visual.conv1.weight"])
