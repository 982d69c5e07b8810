"""SigLIP's pairwise sigmoid image-text objective.

- [0] Zhai et al., Sigmoid Loss for Language Image Pre-Training, ICCV 2023,
  https://arxiv.org/abs/2303.15343: every image-text pair of the global batch is a binary problem
  with logit ``t * <x, y> + b``; t = exp(t') with t' initialised to log 10 and b to -10 (Algorithm 1,
  Sec. 3.2). The loss is summed over the pairs and divided by the local batch
  (:func:`synclip.losses.siglip_loss`, exact across ranks).
- open_clip trains SigLIP with the same initialisation (``open_clip_train/main.py``) and clamps the
  temperature at 100 after each step as for CLIP; ``max_logit_scale`` keeps that clamp.

The bias is part of the model at inference: :meth:`Siglip.export_state` puts ``logit_bias`` beside
``logit_scale`` in the open_clip-layout weights, which ``open_clip.create_model(name, pretrained=...,
init_logit_bias=-10)`` loads, and ``synclip.load(...).exported["logit_bias"]`` serves the sigmoid
probabilities ``sigmoid(t <x, y> + b)`` of zero-shot evaluation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synclip.losses import siglip_loss
from synclip.objectives.base import Encoded
from synclip.objectives.clip import Clip
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("siglip")
class Siglip(Clip):
    """Sigmoid loss between the ``image`` and ``text`` views of a source, with a learned bias; the views,
    patch dropout and temperature are CLIP's (:class:`~synclip.objectives.clip.Clip`)."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        init_logit_scale: float = 10.0,
        init_logit_bias: float = -10.0,
        learn_logit_bias: bool = True,
        image_view: str = "image",
        text_view: str = "text",
        patch_dropout: float = 0.0,
        **temperature,
    ):
        super().__init__(
            model,
            source,
            image_view,
            text_view,
            patch_dropout,
            init_logit_scale=init_logit_scale,
            **temperature,
        )
        if not math.isfinite(init_logit_bias):
            raise ValueError(f"siglip.init_logit_bias must be finite, got {init_logit_bias}")
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)), requires_grad=learn_logit_bias)

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        image, text = self.features(enc)  # (B, D) each
        out = siglip_loss(image, text, self.scale(), self.logit_bias)
        out["logit_scale"] = self.scale().detach()
        out["logit_bias"] = self.logit_bias.detach()
        return out

    def export_state(self) -> dict[str, torch.Tensor]:
        return {**super().export_state(), "logit_bias": self.logit_bias.detach()}
