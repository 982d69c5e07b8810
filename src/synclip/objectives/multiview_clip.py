"""DeCLIP's multi-view supervision: CLIP over 2 image crops x 2 texts (caption and EDA caption).

- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208
- Learnable temperature as in CLIP (Radford et al. 2021): init 1/0.07, clamped to 100.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synclip.losses import multiview_clip_loss
from synclip.objectives.base import Encoded, Objective
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("multiview_clip")
class MultiviewClip(Objective):
    """Mean CLIP loss over every (image crop, text view) pair."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image_ssl",
        text_views: list | tuple = ("text", "text_eda"),
        init_logit_scale: float = 1 / 0.07,
        max_logit_scale: float = 100.0,
        learn_logit_scale: bool = True,
    ):
        super().__init__(model, source)
        self.image_view, self.text_views = image_view, tuple(text_views)
        self.views = (image_view, *self.text_views)
        self.max_log_scale = math.log(max_logit_scale)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(init_logit_scale)), requires_grad=learn_logit_scale
        )

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        images = enc.image(self.image_view, self.source)["features"]  # (B, V, D) or (B, D)
        if images.ndim == 2:
            images = images.unsqueeze(1)  # (B, 1, D)
        texts = [enc.text(v, self.source)["features"] for v in self.text_views]  # each (B, D)
        out = multiview_clip_loss(images, texts, self.logit_scale.exp())
        out["logit_scale"] = self.logit_scale.detach().exp()
        return out

    @torch.no_grad()
    def post_step(self) -> None:
        self.logit_scale.clamp_(0, self.max_log_scale)
