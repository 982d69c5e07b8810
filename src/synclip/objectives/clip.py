"""CLIP's image-text contrastive objective.

- [0] Radford et al., Learning Transferable Visual Models From Natural Language Supervision, 2021,
  https://arxiv.org/abs/2103.00020: learnable temperature initialised to 0.07 (logit scale 1/0.07),
  "clipped to prevent scaling the logits by more than 100".
- [1] Li et al., Scaling Language-Image Pre-training via Masking (FLIP), 2023,
  https://arxiv.org/abs/2212.00794: ``patch_dropout`` drops that fraction of the image view's patch
  tokens in training, for this objective's view only (``model.patch_dropout`` drops them for every view).
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses import clip_loss
from synclip.objectives.base import Encoded, Read, TemperatureObjective
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("clip")
class Clip(TemperatureObjective):
    """Symmetric InfoNCE between the ``image`` and ``text`` views of a source."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image",
        text_view: str = "text",
        patch_dropout: float = 0.0,
        **temperature,
    ):
        super().__init__(model, source, **temperature)
        if not 0.0 <= patch_dropout < 1.0:
            name = type(self).__name__.lower()
            raise ValueError(f"{name}.patch_dropout must be in [0, 1), got {patch_dropout}")
        self.image_view, self.text_view = image_view, text_view
        self.patch_dropout = patch_dropout

    def reads(self) -> list[Read]:
        return [
            Read(self.image_view, "image", self.source, self.patch_dropout),
            Read(self.text_view, "text", self.source),
        ]

    def features(self, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit image and text features (B, D) of the source's pairs."""
        image = enc.image(self.image_view, self.source, self.patch_dropout)["features"]  # (B, D)
        text = enc.text(self.text_view, self.source)["features"]  # (B, D)
        return image, text

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        image, text = self.features(enc)  # (B, D) each
        out = clip_loss(image, text, self.scale())
        out["logit_scale"] = self.scale().detach()
        return out
