"""nCLIP: non-contrastive language-image pre-training (the non-contrastive half of xCLIP).

- Zhou et al., Non-Contrastive Learning Meets Language-Image Pre-Training, CVPR 2023,
  https://arxiv.org/abs/2210.09304; ``xclip = clip + nclip``.

Image and text heads (MLP -> bottleneck -> L2 norm) score K shared, weight-normalised prototypes;
each modality predicts the other's prototype distribution (cross-entropy between the softmaxes),
with a sharpness term (low per-sample entropy) and a smoothness term (high entropy of the global
batch-mean distribution) against the two collapses. See ``synclip.losses.nclip``.

Only the paper's abstract could be checked; K, the temperatures, the term weights, stop-gradient on
the targets and the head sizes follow DINO-style defaults and are all options. Watch ``entropy``,
``batch_entropy`` and ``usage`` in the logs: collapse shows there first.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.heads import PrototypeHead, prototype_layer
from synclip.losses import nclip_loss
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("nclip")
class NClip(Objective):
    """Cross-modal prototype prediction between the ``image`` and ``text`` embeddings of a pair."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image",
        text_view: str = "text",
        num_prototypes: int = 16384,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        share_prototypes: bool = True,
        temperature: float = 0.1,
        target_temperature: float | None = None,
        stop_grad_target: bool = False,
        sharpness_weight: float = 1.0,
        smoothness_weight: float = 1.0,
    ):
        super().__init__(model, source)
        self.image_view, self.text_view = image_view, text_view
        d = int(model.embed_dim)
        image_protos = prototype_layer(bottleneck_dim, num_prototypes)
        text_protos = image_protos if share_prototypes else prototype_layer(bottleneck_dim, num_prototypes)
        self.image_head = PrototypeHead(d, hidden_dim, bottleneck_dim, image_protos)
        self.text_head = PrototypeHead(d, hidden_dim, bottleneck_dim, text_protos)
        self.options = {
            "temperature": temperature,
            "target_temperature": target_temperature,
            "stop_grad_target": stop_grad_target,
            "sharpness_weight": sharpness_weight,
            "smoothness_weight": smoothness_weight,
        }

    def reads(self) -> list[Read]:
        return [Read(self.image_view, "image", self.source), Read(self.text_view, "text", self.source)]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        image = enc.image(self.image_view, self.source)["embed"]  # (B, D)
        text = enc.text(self.text_view, self.source)["embed"]  # (B, D)
        return nclip_loss(self.image_head(image), self.text_head(text), **self.options)  # logits (B, K)
