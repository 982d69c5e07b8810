"""Local-to-global self-distillation from an EMA teacher (DINO inside CLIP training: SILC).

- [0] Caron et al., Emerging Properties in Self-Supervised Vision Transformers (DINO), ICCV 2021,
  https://arxiv.org/abs/2104.14294; facebookresearch/dino ``main_dino.py``: a projection head (MLP
  ``W -> 2048 -> 2048 -> 256`` with GELU, L2 normalisation, weight-normalised ``256 -> K`` prototypes,
  ``out_dim`` K = 65536); the teacher (an EMA copy of tower + head, momentum 0.996 -> 1 on a cosine)
  sees the 2 global crops, the student all crops; teacher centring (centre momentum 0.9) and
  sharpening (``teacher_temp`` 0.04; ``warmup_teacher_temp`` 0.04 over ``warmup_teacher_temp_epochs``
  0 by default, the paper's ViT-B runs warm 0.04 -> 0.07 over 30 epochs), student temperature 0.1;
  cross-entropy over all (teacher crop, student crop) pairs but a crop with itself.
- [1] Naeem et al., SILC: Improving Vision Language Pretraining with Self-Distillation, ECCV 2024,
  https://arxiv.org/abs/2310.13355: adds [0]'s loss to image-text contrastive training, with 2 global
  crops of scale (0.4, 1) and 8 local crops of (0.05, 0.4) (the ``image_global`` / ``image_local``
  views), the contrastive loss computed on each global crop (the ``silc`` recipe points ``clip`` at
  ``image_global``), and a *fixed* EMA momentum, so that the teacher keeps learning from the
  image-text loss late in training (the ``silc`` recipe sets ``momentum_end`` = ``momentum``; the
  value itself we did not find stated, so 0.996 is DINO's).

The head reads the tower's pooled feature before the CLIP projection (DINO's CLS token). K = 65536 and
the 2048-wide head are DINO's defaults; for synclip's tiny towers the recipes set smaller ones (ours).
The teacher temperature warm-up runs over ``teacher_temperature_warmup`` of this objective's own
steps (DINO counts epochs). Logged: ``teacher_entropy`` (mean entropy of the teacher's distributions,
over log K), ``usage_entropy`` (entropy of their batch mean, over log K) and ``prototypes_used`` (the
fraction of prototypes that are some image's most likely one): collapse shows as all three falling.
"""

from __future__ import annotations

import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip import distributed as dist
from synclip.heads import PrototypeHead, prototype_layer
from synclip.losses.self_distill import (
    cross_view_loss,
    distribution_stats,
    linear_warmup,
    teacher_probs,
    updated_center,
)
from synclip.models.ema_teacher import EmaTeacher
from synclip.models.two_tower import image_tower_outputs
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES


def image_feature(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The feature a self-distillation head reads: the ViT's pooled token before the projection
    (DINO's CLS), or the embedding of a tower without one."""
    return out["pooled"] if "pooled" in out else out["embed"]


def feature_width(model: nn.Module) -> int:
    """Width of :func:`image_feature`: the ViT's width, or the embedding size of other towers."""
    visual = model.visual
    plain_vit = isinstance(visual, VisionTransformer) and visual.attn_pool is None
    return int(model.vision_width) if plain_vit else int(model.embed_dim)


class HeadedTower(nn.Module):
    """An image tower with prototype heads: what an EMA teacher copies and the student is matched to.

    ``forward(images, mask=None, mask_token=None)`` -> ``{"image": (N, K) logits of the pooled feature,
    "patches": (N, P, K2) logits of the patch tokens}`` for the heads present (``image_head``,
    ``patch_head``).
    """

    def __init__(
        self, visual: nn.Module, image_head: nn.Module | None = None, patch_head: nn.Module | None = None
    ):
        super().__init__()
        self.visual, self.image_head, self.patch_head = visual, image_head, patch_head

    def forward(self, images: torch.Tensor, mask=None, mask_token=None) -> dict[str, torch.Tensor]:
        lead = images.shape[:-3]  # (B,) or (B, V)
        out = image_tower_outputs(
            self.visual, images.reshape(-1, *images.shape[-3:]), mask=mask, mask_token=mask_token
        )
        result = {}
        if self.image_head is not None:
            logits = self.image_head(image_feature(out))  # (N, K)
            result["image"] = logits.reshape(*lead, logits.shape[-1])
        if self.patch_head is not None:
            result["patches"] = self.patch_head(out["tokens"])  # (N, P, K2)
        return result


def dino_head(in_dim: int, hidden: int, bottleneck: int, prototypes: int) -> PrototypeHead:
    """DINO's head: 3-layer GELU MLP, L2 normalisation, weight-normalised prototypes (norm fixed to 1)."""
    return PrototypeHead(in_dim, hidden, bottleneck, prototype_layer(bottleneck, prototypes))


def check_temperatures(**temperatures: float) -> None:
    for name, value in temperatures.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


# What the teacher does before an objective switched on late (``start_fraction`` > 0) starts:
# "copy": it is the student's copy, so it starts from the student (SigLIP 2, arXiv:2502.14786, section
# 2.3: the teacher is initialised from the student when the losses are added at 80% of training);
# "ema": it follows the student with the EMA from step 0 (ours, synclip's behaviour before 2026-12-04).
TEACHER_BEFORE_START = ("copy", "ema")


class TeacherDistillation(Objective):
    """What DINO's and iBOT's objectives share: the teacher temperature schedule, the centre over the
    global batch and the EMA teacher's update. Subclasses set ``head``, ``_student``, ``teacher`` and
    the ``center`` buffer after :meth:`_distill_options`."""

    def _distill_options(
        self,
        student_temperature: float,
        teacher_temperature: float,
        warmup_teacher_temperature: float,
        teacher_temperature_warmup: float,
        center_momentum: float,
        teacher_before_start: str = "copy",
    ) -> None:
        check_temperatures(
            student_temperature=student_temperature,
            teacher_temperature=teacher_temperature,
            warmup_teacher_temperature=warmup_teacher_temperature,
        )
        if not 0 <= center_momentum < 1:
            raise ValueError(f"center_momentum must lie in [0, 1), got {center_momentum}")
        if not 0 <= teacher_temperature_warmup <= 1:
            raise ValueError(
                f"teacher_temperature_warmup is a fraction of the objective's steps in [0, 1], got "
                f"{teacher_temperature_warmup}"
            )
        if teacher_before_start not in TEACHER_BEFORE_START:
            raise ValueError(
                f"teacher_before_start must be one of {TEACHER_BEFORE_START}, got {teacher_before_start!r}"
            )
        self.teacher_before_start = teacher_before_start
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.teacher_temperature_warmup, self.center_momentum = teacher_temperature_warmup, center_momentum

    def temperature(self) -> float:
        """The teacher temperature at this step (DINO's linear warm-up, over this objective's steps)."""
        return linear_warmup(
            self.warmup_teacher_temperature,
            self.teacher_temperature,
            self.teacher_temperature_warmup,
            self.span_progress,
        )

    @torch.no_grad()
    def _update_center(self, teacher_logits: torch.Tensor) -> None:
        """EMA of the teacher's mean output (..., K) over the global batch (all ranks): DINO's centre
        of the crop outputs, iBOT's centre of the patch outputs."""
        flat = teacher_logits.detach().float().flatten(0, -2)  # (N, K)
        total = dist.all_reduce_sum(torch.cat([flat.sum(0), flat.new_tensor([flat.shape[0]])]))  # (K + 1,)
        mean = (total[:-1] / total[-1]).view_as(self.center)  # (1, K) or (1, 1, K)
        self.center.copy_(updated_center(self.center, mean, self.center_momentum))

    @torch.no_grad()
    def post_step(self) -> None:
        """The EMA update; before the objective's ``start_fraction`` with ``teacher_before_start='copy'``
        the teacher is a copy of the student, so it starts from the student's weights (SigLIP 2)."""
        before = self.progress < self.start_fraction and self.teacher_before_start == "copy"
        self.teacher.update(self._student[0], self.span_progress, momentum=0.0 if before else None)


@OBJECTIVES.register("self_distill")
class SelfDistill(TeacherDistillation):
    """DINO's loss between an EMA teacher on the global crops and the student on all crops."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        global_view: str = "image_global",
        local_view: str | None = "image_local",
        prototypes: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float = 0.04,
        teacher_temperature_warmup: float = 0.0,
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
        self.global_view, self.local_view = global_view, local_view
        self.head = dino_head(feature_width(model), hidden_dim, bottleneck_dim, prototypes)
        student = HeadedTower(model.visual, image_head=self.head)
        self._student = [student]  # a plain list: the tower is the model's, not saved twice
        self.teacher = EmaTeacher(student, start=momentum, end=momentum_end)
        self.register_buffer("center", torch.zeros(1, prototypes))  # (1, K), DINO's centre

    def reads(self) -> list[Read]:
        views = [Read(self.global_view, "image", self.source)]
        if self.local_view:
            views.append(Read(self.local_view, "image", self.source))
        return views

    def _crops(self, enc: Encoded, view: str) -> torch.Tensor:
        logits = self.head(image_feature(enc.image(view, self.source)))  # (B, V, K) or (B, K)
        return logits.unsqueeze(1) if logits.ndim == 2 else logits

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        student = self._crops(enc, self.global_view)  # (B, G, K)
        if self.local_view:
            student = torch.cat([student, self._crops(enc, self.local_view)], dim=1)  # (B, G + L, K)
        images = batch[self.source][self.global_view]  # (B, G, 3, H, W) or (B, 3, H, W)
        teacher_logits = self.teacher(images if images.ndim == 5 else images.unsqueeze(1))[
            "image"
        ]  # (B, G, K)
        q = teacher_probs(teacher_logits, self.center, self.temperature())  # (B, G, K)
        loss = cross_view_loss(student, q, self.student_temperature)
        if self.training:
            self._update_center(teacher_logits)
        return {"loss": loss, **distribution_stats(q.flatten(0, 1))}
