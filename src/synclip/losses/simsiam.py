"""SimSiam's symmetric negative cosine with stop-gradient.

- Chen & He, Exploring Simple Siamese Representation Learning, 2021, https://arxiv.org/abs/2011.10566:
  ``L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` with ``D(p, z) = -cos(p, z)``; used by DeCLIP's ISS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Predictions ``p`` (B, D) and projections ``z`` (B, D) of two views -> scalar in [-1, 1]."""
    d12 = F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
    d21 = F.cosine_similarity(p2, z1.detach(), dim=-1).mean()
    return -(d12 + d21) / 2
