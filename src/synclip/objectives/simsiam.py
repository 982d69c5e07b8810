"""SimSiam on two augmented crops: DeCLIP's image self-supervision (ISS).

- Chen & He, Exploring Simple Siamese Representation Learning, 2021, https://arxiv.org/abs/2011.10566
- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208:
  projector ``D -> 1024 -> 1024 -> 1024`` (BN after every layer, the output included) and predictor
  ``1024 -> 512 -> 1024`` on the image *embedding* (after the CLIP projection); negative cosine with
  stop-gradient on the projection.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.heads import mlp
from synclip.losses import simsiam_loss
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("simsiam")
class SimSiam(Objective):
    """``-(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2`` over the first two crops of ``view``."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        view: str = "image_ssl",
        proj_dim: int = 1024,
        pred_dim: int = 512,
        patch_dropout: float = 0.0,
    ):
        super().__init__(model, source)
        self.view = view
        self.patch_dropout = patch_dropout
        self.projector = mlp([model.embed_dim, proj_dim, proj_dim, proj_dim], bn_last=True)
        self.predictor = mlp([proj_dim, pred_dim, proj_dim])

    def reads(self) -> list[Read]:
        return [Read(self.view, "image", self.source, self.patch_dropout)]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        embed = enc.image(self.view, self.source, self.patch_dropout)["embed"]  # (B, N, D)
        if embed.ndim != 3 or embed.shape[1] < 2:
            raise ValueError(f"simsiam needs at least 2 crops per image in view {self.view!r}")
        z1, z2 = self.projector(embed[:, 0]), self.projector(embed[:, 1])  # (B, P) each
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (B, P) each
        loss = simsiam_loss(p1, p2, z1, z2)
        with torch.no_grad():
            z_std = (
                torch.nn.functional.normalize(z1, dim=-1).std(0).mean()
            )  # collapse monitor: ~1/sqrt(P) if healthy
        return {"loss": loss, "z_std": z_std}
