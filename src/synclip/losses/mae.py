"""MAE's pixel reconstruction loss (He et al. 2022, https://arxiv.org/abs/2111.06377): patches, per-patch
normalised targets (``norm_pix_loss``), and the mean squared error over the masked patches only."""

from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Images (B, C, H, W) -> patches (B, P, patch * patch * C) in the ViT's row-major patch order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)  # (B, C, gh, p, gw, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch normalised pixels (MAE's ``norm_pix_loss`` target): zero mean, unit variance per patch."""
    mean = patches.mean(dim=-1, keepdim=True)  # (B, P, 1)
    var = patches.var(dim=-1, keepdim=True)  # (B, P, 1), unbiased as in MAE
    return (patches - mean) / (var + eps).sqrt()


def masked_patch_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked patches only: pred, target (B, P, D), mask (B, P) bool."""
    error = (pred - target).pow(2).mean(dim=-1)  # (B, P)
    hidden = mask.to(error.dtype)  # (B, P), 1 at masked patches
    return (error * hidden).sum() / hidden.sum()
