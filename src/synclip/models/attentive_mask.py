"""A-CLIP's attentive token selection: keep the patches a teacher attends to most.

Yang et al., Attentive Mask CLIP, ICCV 2023, https://arxiv.org/abs/2212.08653; code microsoft/A-CLIP
``models.py``:

- ``get_mask``: the teacher scores the patches of a larger crop (the EMA view); each online crop lies
  inside it, so the score map is resampled onto that crop's region (bilinear) and back onto the
  patch grid. :func:`scores_in_crops` does the same with one ``grid_sample`` per batch.
- ``get_att_mask(attention, ratio=0.5)``: the 14 x 14 map is pooled to 7 x 7 blocks of 2 x 2 patches
  (bilinear by exactly one half, i.e. the mean of each block), the ``int(49 * 0.5) + 1 = 25``
  highest-scoring blocks are kept, and every patch of a kept block is kept. :func:`attentive_keep`
  keeps ``ceil(keep * blocks)`` blocks, the same 25 of 49 there, and exactly the asked fraction
  whenever it is a whole number of blocks (the official ``int(n * r) + 1`` keeps one block more than
  half of an even count; ours).

The selection is a function of the scores alone: blocks of equal score are ranked by position (a
stable sort), so the same sample scored by the same teacher keeps the same patches on every rank
and in any batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def scores_in_crops(scores: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Resample patch scores of the teacher's crop onto the grid of each crop inside it.

    Args:
        scores: (B, gh, gw) scores on the teacher crop's patch grid.
        boxes: (B, V, 4) each crop's ``(top, left, height, width)`` as fractions of the teacher crop.

    Returns:
        (B, V, gh, gw): bilinear samples of the score map at each crop's patch centres.
    """
    if scores.ndim != 3 or boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != scores.shape[0]:
        raise ValueError(
            f"scores_in_crops needs scores (B, gh, gw) and boxes (B, V, 4), got {tuple(scores.shape)} "
            f"and {tuple(boxes.shape)}"
        )
    b, gh, gw = scores.shape
    v = boxes.shape[1]
    top, left, height, width = boxes.to(scores.dtype).unbind(-1)  # (B, V) each, in [0, 1]
    theta = torch.zeros(b, v, 2, 3, dtype=scores.dtype, device=scores.device)  # output -> input coords
    theta[..., 0, 0] = width  # x in [-1, 1] over the crop -> over the teacher crop
    theta[..., 0, 2] = 2 * left + width - 1
    theta[..., 1, 1] = height
    theta[..., 1, 2] = 2 * top + height - 1
    grid = F.affine_grid(
        theta.reshape(b * v, 2, 3), [b * v, 1, gh, gw], align_corners=False
    )  # (BV, gh, gw, 2)
    maps = scores.unsqueeze(1).expand(b, v, gh, gw).reshape(b * v, 1, gh, gw)  # (BV, 1, gh, gw)
    out = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, v, gh, gw)


def kept_blocks(blocks: int, keep: float) -> int:
    """How many of ``blocks`` units :func:`attentive_keep` keeps for the fraction ``keep``."""
    if not 0 < keep <= 1:
        raise ValueError(f"the kept fraction must lie in (0, 1], got {keep}")
    return min(blocks, max(1, math.ceil(keep * blocks - 1e-9)))


def attentive_keep(scores: torch.Tensor, keep: float, block: int = 1) -> torch.Tensor:
    """Indices of the patches to keep: the highest-scoring ``block`` x ``block`` blocks.

    Args:
        scores: (N, gh, gw) patch scores (higher = more relevant), row-major patch order.
        keep: fraction of the blocks to keep, in (0, 1].
        block: side of a block in patches; must divide both grid sides (A-CLIP: 2).

    Returns:
        (N, K) long patch indices in [0, gh * gw), ascending, with K = ``kept_blocks(blocks, keep) *
        block ** 2`` the same for every row.
    """
    if scores.ndim != 3:
        raise ValueError(f"attentive_keep needs scores (N, gh, gw), got {tuple(scores.shape)}")
    n, gh, gw = scores.shape
    if block < 1 or gh % block or gw % block:
        raise ValueError(
            f"the attentive-mask block ({block} patches) must divide the patch grid {gh} x {gw}; "
            f"set the objective's block to a divisor (1 keeps single patches)"
        )
    bh, bw = gh // block, gw // block
    pooled = F.avg_pool2d(scores.unsqueeze(1).float(), block).reshape(n, bh * bw)  # (N, blocks)
    k = kept_blocks(bh * bw, keep)
    order = torch.sort(pooled, dim=1, descending=True, stable=True).indices[:, :k]  # (N, k), ties by position
    row, col = order // bw, order % bw  # (N, k) block coordinates
    dy = torch.arange(block, device=scores.device).repeat_interleave(block)  # (block^2,)
    dx = torch.arange(block, device=scores.device).repeat(block)  # (block^2,)
    patch_rows = row.unsqueeze(-1) * block + dy  # (N, k, block^2)
    patch_cols = col.unsqueeze(-1) * block + dx  # (N, k, block^2)
    index = (patch_rows * gw + patch_cols).reshape(n, -1)  # (N, K)
    return index.sort(dim=1).values
