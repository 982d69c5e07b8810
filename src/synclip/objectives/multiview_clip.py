"""DeCLIP's multi-view supervision: CLIP over 2 image crops x 2 texts (caption and EDA caption).

- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208
- Learnable temperature as in CLIP (Radford et al. 2021): init 1/0.07, clamped to 100.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses import multiview_clip_loss
from synclip.objectives.base import Encoded, Read, TemperatureObjective
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("multiview_clip")
class MultiviewClip(TemperatureObjective):
    """Mean CLIP loss over every (image crop, text view) pair."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image_ssl",
        text_views: list | tuple = ("text", "text_eda"),
        **temperature,
    ):
        super().__init__(model, source, **temperature)
        self.image_view, self.text_views = image_view, tuple(text_views)

    def reads(self) -> list[Read]:
        return [Read(self.image_view, "image", self.source)] + [
            Read(v, "text", self.source) for v in self.text_views
        ]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        images = self.crops(enc, self.image_view)  # (B, V, D)
        texts = [enc.text(v, self.source)["features"] for v in self.text_views]  # each (B, D)
        out = multiview_clip_loss(images, texts, self.scale())
        out["logit_scale"] = self.scale().detach()
        return out
