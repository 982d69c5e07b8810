"""Masked prediction against an EMA teacher's patch prototypes (iBOT's patch loss, as TIPS adds it).

- [0] Zhou et al., iBOT: Image BERT Pre-Training with Online Tokenizer, ICLR 2022,
  https://arxiv.org/abs/2111.07832; bytedance/ibot ``main_ibot.py``: the student sees the image with
  masked patch embeddings replaced by a learned mask token; at each masked position it predicts the
  EMA teacher's distribution over K prototypes of the *unmasked* image's patch token there
  (teacher centred with its own centre, momentum ``center_momentum2`` 0.9, and sharpened:
  ``teacher_patch_temp`` 0.07 after a linear warm-up from ``warmup_teacher_patch_temp`` 0.04 over
  ``warmup_teacher_temp_epochs`` 30 of its 100 epochs; student temperature 0.1); the loss is the
  cross-entropy averaged over each image's masked patches, then over images. ``patch_out_dim`` 8192.
- [1] Maninis et al., TIPS: Text-Image Pretraining with Spatial awareness, ICLR 2025: CLIP training +
  DINO-style self-distillation + this masked prediction, one EMA teacher.
- [2] Tschannen et al., SigLIP 2, 2025, https://arxiv.org/abs/2502.14786: adds [1]'s two losses for
  the last 20% of training.

Masks come from the ``image_mask`` view (BEiT / EVA block masking; its ``ratio`` is the recipe's
choice) and the mask token and masked forward are the MIM machinery of ``mim_distill``
(:mod:`synclip.models.masked_embed`). The teacher is this objective's own EMA copy of the image tower
and a patch head (a DINO head applied per token); the warm-up runs over ``teacher_temperature_warmup``
of this objective's own steps (0.3: iBOT's 30 of 100 epochs; the fraction is our reading). The 2048-wide
head and K = 8192 are iBOT's; the recipes set smaller ones for the tiny towers (ours). Logged: the
teacher's patch-distribution collapse monitors, as ``self_distill`` logs them.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses.self_distill import (
    distribution_stats,
    masked_patch_loss,
    teacher_probs,
)
from synclip.models.ema_teacher import EmaTeacher
from synclip.objectives.base import Encoded, Read
from synclip.objectives.mim_distill import check_mask, mim_width
from synclip.objectives.self_distill import HeadedTower, TeacherDistillation, dino_head
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("masked_prediction")
class MaskedPrediction(TeacherDistillation):
    """iBOT's masked patch loss: student on the masked image, EMA teacher on the unmasked image."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image",
        mask_view: str = "image_mask",
        prototypes: int = 8192,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.07,
        warmup_teacher_temperature: float = 0.04,
        teacher_temperature_warmup: float = 0.3,
        center_momentum: float = 0.9,
        momentum: float = 0.996,
        momentum_end: float = 1.0,
        teacher_before_start: str = "copy",
    ):
        super().__init__(model, source)
        self._distill_options(
            student_temperature,
            teacher_temperature,
            warmup_teacher_temperature,
            teacher_temperature_warmup,
            center_momentum,
            teacher_before_start,
        )
        width = mim_width(model, "masked_prediction")
        self.image_view, self.mask_view = image_view, mask_view
        self.patches = int(model.visual.grid_size[0] * model.visual.grid_size[1])
        self.mask_token = nn.Parameter(torch.empty(width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)  # BEiT / iBOT
        self.head = dino_head(width, hidden_dim, bottleneck_dim, prototypes)
        student = HeadedTower(model.visual, patch_head=self.head)
        self._student = [student]  # a plain list: the tower is the model's, not saved twice
        self.teacher = EmaTeacher(student, start=momentum, end=momentum_end)
        self.register_buffer("center", torch.zeros(1, 1, prototypes))  # (1, 1, K), iBOT's center2

    def reads(self) -> list[Read]:
        # the student sees the masked view, encoded in forward (not through the shared memo)
        return [
            Read(self.image_view, "image", self.source, memo=False),
            Read(self.mask_view, None, self.source),
        ]

    def tower_parameters(self) -> list[nn.Parameter]:
        return [self.mask_token]

    def _encode(self, batch: dict) -> dict[str, torch.Tensor]:
        images, mask = batch[self.source][self.image_view], batch[self.source][self.mask_view]
        if images.ndim == 5:  # a multi-crop view (B, N, 3, H, W), e.g. SigLIP 2's one global crop:
            images = images[:, 0]  # (B, 3, H, W) its first crop, masked for the student only
        check_mask(mask, self.patches, self.mask_view)
        student = self._student[0](images, mask=mask, mask_token=self.mask_token)["patches"]  # (B, P, K)
        teacher = self.teacher(images)["patches"]  # (B, P, K), unmasked image, no grad
        return {"student": student, "teacher": teacher}

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        out = enc.memo(("masked_prediction", id(self)), self._encode)
        mask = batch[self.source][self.mask_view]  # (B, P) bool, True = masked
        q = teacher_probs(out["teacher"], self.center, self.temperature())  # (B, P, K)
        loss = masked_patch_loss(out["student"], q, mask, self.student_temperature)
        if self.training:
            self._update_center(out["teacher"])
        return {"loss": loss, **distribution_stats(q[mask])}
