"""BYOL's regression loss between an online prediction and a target projection.

- Grill et al., Bootstrap Your Own Latent (BYOL), NeurIPS 2020, https://arxiv.org/abs/2006.07733:
  ``2 - 2 * cos(p, z)`` per sample (the squared distance of the unit vectors), the target ``z``
  without gradient.
- A-CLIP (Yang et al., ICCV 2023; code microsoft/A-CLIP ``losses.py``) uses it between each masked
  online view's prediction and the EMA tower's projection of the teacher crop, averaged over samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``2 - 2 cos(prediction, target)``; ``target`` gets no gradient.

    Args:
        prediction: (N, D) online predictions (any scale).
        target: (N, D) target projections (any scale).
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"byol_loss needs equal shapes, got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    p = F.normalize(prediction, dim=-1)  # (N, D)
    z = F.normalize(target.detach(), dim=-1)  # (N, D)
    return (2 - 2 * (p * z).sum(-1)).mean()
