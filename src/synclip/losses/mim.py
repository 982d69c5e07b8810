"""Masked image modelling against a teacher's patch features (EVA, Fang et al. 2023,
https://arxiv.org/abs/2211.07636: negative cosine; BEiT v2-style regression, Peng et al. 2022,
https://arxiv.org/abs/2208.06366: smooth L1 on layer-normalised targets)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIM_LOSSES = ("cosine", "smooth_l1")


def mim_feature_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str = "cosine"
) -> dict[str, torch.Tensor]:
    """Loss between predicted and teacher features at the masked patches: pred, target (M, C).

    ``cosine``: ``-mean(cos(pred, target))`` (EVA); ``smooth_l1``: against ``layer_norm(target)``.
    Returns ``{"loss", "cos"}`` (the mean cosine, detached, for both kinds).
    """
    cos = F.cosine_similarity(pred, target, dim=-1)  # (M,)
    if kind == "cosine":
        loss = -cos.mean()
    else:
        loss = F.smooth_l1_loss(pred, F.layer_norm(target, target.shape[-1:]))
    return {"loss": loss, "cos": cos.detach().mean()}
