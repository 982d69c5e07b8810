"""SimCLR on two augmented crops: the image self-supervision of SLIP.

- Chen et al., SimCLR, 2020, https://arxiv.org/abs/2002.05709
- Mu et al., SLIP: Self-supervision meets Language-Image Pre-training, 2021,
  https://arxiv.org/abs/2112.12750: a 3-layer MLP (W -> 4096 -> 4096 -> 256, SyncBatchNorm) on the
  image tower's CLS feature *before* the CLIP projection; NT-Xent with temperature 0.1, negatives
  gathered across ranks with gradients; ``slip = clip 1.0 + simclr 1.0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synclip.heads import mlp
from synclip.losses import ntxent_loss
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES


def image_feature_width(model: nn.Module) -> int:
    """Width of the pre-projection pooled image feature (the embed dim for non-ViT towers)."""
    return int(getattr(model, "vision_width", None) or model.embed_dim)


def pre_projection(out: dict[str, torch.Tensor]) -> torch.Tensor:
    return out["pooled"] if "pooled" in out else out["embed"]


@OBJECTIVES.register("simclr")
class SimClr(Objective):
    """NT-Xent between the first two crops of ``view`` (B, N >= 2, 3, H, W) through an MLP head."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        view: str = "image_ssl",
        temperature: float = 0.1,
        mlp_dim: int = 4096,
        embed_dim: int = 256,
        patch_dropout: float = 0.0,
    ):
        super().__init__(model, source)
        self.view, self.temperature = view, temperature
        self.patch_dropout = patch_dropout
        self.head = mlp([image_feature_width(model), mlp_dim, mlp_dim, embed_dim])

    def reads(self) -> list[Read]:
        return [Read(self.view, "image", self.source, self.patch_dropout)]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        feats = pre_projection(enc.image(self.view, self.source, self.patch_dropout))  # (B, N, W)
        if feats.ndim != 3 or feats.shape[1] < 2:
            raise ValueError(f"simclr needs at least 2 crops per image in view {self.view!r}")
        # one head call per crop, as SLIP does, so BatchNorm statistics are per view
        a = F.normalize(self.head(feats[:, 0]), dim=-1)  # (B, E)
        b = F.normalize(self.head(feats[:, 1]), dim=-1)  # (B, E)
        return ntxent_loss(a, b, self.temperature)
