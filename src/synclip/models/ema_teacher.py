"""A momentum (EMA) teacher: a slowly moving average of a student network, as self-distillation uses.

- Caron et al., Emerging Properties in Self-Supervised Vision Transformers (DINO), ICCV 2021,
  https://arxiv.org/abs/2104.14294; code facebookresearch/dino ``main_dino.py``: the teacher starts as
  a copy of the student, is updated after every optimizer step as
  ``teacher = m * teacher + (1 - m) * student`` with ``m`` following a cosine schedule from
  ``momentum_teacher = 0.996`` to 1 over training (``utils.cosine_scheduler(args.momentum_teacher, 1,
  epochs, len(data_loader))``), and gets no gradient.
- iBOT (Zhou et al. 2022), SILC (Naeem et al. 2023, https://arxiv.org/abs/2310.13355), TIPS (Maninis
  et al. 2025) and A-CLIP (Yang et al. 2023) use the same teacher.

The copy is a submodule of whoever owns it (an objective), so it is in that owner's ``state_dict``:
checkpoints save it and a resume restores it bit for bit. Its parameters never require a gradient,
so the optimizer (which takes only trainable parameters), gradient clipping and DDP's gradient
reduction leave it alone. Every rank builds it from the same seeded student and applies the same
update from the same (all-reduced) student, so it stays identical on every rank; DDP also
broadcasts rank 0's parameters and buffers when it wraps the module.

Buffers (BatchNorm statistics, say) are copied from the student, not averaged (DINO's teacher keeps its
own BatchNorm statistics in training mode; the teacher here stays in eval mode, see :meth:`train`, so
the student's statistics are the ones that describe the current features; our choice).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class EmaTeacher(nn.Module):
    """A momentum copy of a module (DINO/iBOT/SILC/A-CLIP teacher). Parameters never require grad.

    Args:
        student: the module to follow; deep-copied at construction (``self.module``).
        start: momentum at progress 0 (DINO's ``momentum_teacher``, 0.996).
        end: momentum at progress 1 (DINO: 1.0).

    The teacher is always in eval mode (no dropout, no patch dropout, BatchNorm in inference mode)
    whatever its owner's mode: it is a target, not a model being trained.
    """

    def __init__(self, student: nn.Module, start: float = 0.996, end: float = 1.0):
        super().__init__()
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"EMA momentum needs 0 <= start <= end <= 1, got start={start}, end={end}")
        self.start, self.end = float(start), float(end)
        self.module = copy.deepcopy(student)
        self.module.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> EmaTeacher:
        return super().train(False)  # a teacher never leaves eval mode

    def momentum(self, progress: float) -> float:
        """DINO's cosine schedule: ``end - (end - start) * (1 + cos(pi * progress)) / 2``, ``progress``
        clamped to [0, 1]; ``start`` at 0, ``end`` at 1."""
        p = min(1.0, max(0.0, float(progress)))
        return self.end - (self.end - self.start) * (1.0 + math.cos(math.pi * p)) / 2.0

    @torch.no_grad()
    def update(self, student: nn.Module, progress: float, momentum: float | None = None) -> None:
        """``teacher = m * teacher + (1 - m) * student`` for every parameter (``m = momentum(progress)``,
        or ``momentum`` when given: 0 copies the student); buffers are copied. ``student`` must have the
        structure of the module the teacher was built from."""
        m = self.momentum(progress) if momentum is None else float(momentum)
        mine, theirs = dict(self.module.named_parameters()), dict(student.named_parameters())
        if mine.keys() != theirs.keys():
            missing, extra = sorted(mine.keys() - theirs.keys()), sorted(theirs.keys() - mine.keys())
            raise ValueError(
                f"EMA update: the student does not match the teacher's structure (teacher only: "
                f"{missing[:5]}, student only: {extra[:5]}); pass the module the teacher was built from"
            )
        for name, param in mine.items():
            param.mul_(m).add_(theirs[name].detach().to(param.dtype), alpha=1.0 - m)
        theirs_buffers = dict(student.named_buffers())
        for name, buffer in self.module.named_buffers():
            if name in theirs_buffers:
                buffer.copy_(theirs_buffers[name])

    def forward(self, *args, **kwargs):
        """``self.module(*args, **kwargs)`` under ``torch.no_grad()``."""
        with torch.no_grad():
            return self.module(*args, **kwargs)
