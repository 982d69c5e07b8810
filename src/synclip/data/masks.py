"""Which patches of an image to mask, for masked image modelling.

Both generators return a flat bool mask (grid_h * grid_w,) in the ViT's patch order (row-major, as a
patch-embedding convolution's output is flattened) with **exactly** ``round(ratio * N)`` True entries,
so that every sample of a batch masks the same number of patches and masked or visible patches can
be gathered into one (B, K, ...) tensor.

- [0] He et al., Masked Autoencoders Are Scalable Vision Learners, 2022,
  https://arxiv.org/abs/2111.06377: uniform random masking, 75% by default.
- [1] Bao et al., BEiT: BERT Pre-Training of Image Transformers, 2021, https://arxiv.org/abs/2106.08254:
  block-wise masking (Algorithm 1): rectangles of at least 16 patches with aspect ratio in
  (0.3, 1/0.3) until 40% of the patches are masked; EVA (Fang et al. 2023) masks 40% the same way.
"""

from __future__ import annotations

import math

import torch


def masked_count(n: int, ratio: float) -> int:
    """How many of ``n`` patches a mask of ``ratio`` covers: ``round(ratio * n)``, at least 1, at most n - 1."""
    if not 0 < ratio < 1:
        raise ValueError(f"mask ratio must lie in (0, 1), got {ratio}")
    count = int(round(ratio * n))
    if not 1 <= count <= n - 1:
        raise ValueError(
            f"mask ratio {ratio} of {n} patches masks {count}; a mask needs at least one masked and one "
            "visible patch: change the ratio or use a finer patch grid"
        )
    return count


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """An integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def random_mask(
    grid_h: int, grid_w: int, ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniformly random patches (MAE [0]): bool (grid_h * grid_w,) with ``round(ratio * N)`` True."""
    n = grid_h * grid_w
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[: masked_count(n, ratio)]] = True
    return mask


def _add_block(
    mask: torch.Tensor, budget: int, min_block: int, log_aspect: tuple[float, float], generator
) -> int:
    """Mask one random rectangle that adds between 1 and ``budget`` new patches (BEiT's ``_mask``).

    ``mask`` is (grid_h, grid_w) and changed in place; returns the number of newly masked patches
    (0 when ten tries found no rectangle that fits the budget).
    """
    grid_h, grid_w = mask.shape
    for _ in range(10):
        area = _uniform(min(min_block, budget), budget, generator)
        aspect = math.exp(_uniform(*log_aspect, generator))
        h = int(round(math.sqrt(area * aspect)))
        w = int(round(math.sqrt(area / aspect)))
        if not (1 <= h < grid_h and 1 <= w < grid_w):
            continue
        top, left = _randint(0, grid_h - h, generator), _randint(0, grid_w - w, generator)
        block = mask[top : top + h, left : left + w]  # a view: writing it writes mask
        new = int((~block).sum())
        if 0 < new <= budget:
            block.fill_(True)
            return new
    return 0


def _neighbours_of(mask: torch.Tensor) -> torch.Tensor:
    """Unmasked patches 4-adjacent to a masked one, (grid_h, grid_w) bool."""
    near = torch.zeros_like(mask)
    near[1:] |= mask[:-1]
    near[:-1] |= mask[1:]
    near[:, 1:] |= mask[:, :-1]
    near[:, :-1] |= mask[:, 1:]
    return near & ~mask


def block_mask(
    grid_h: int,
    grid_w: int,
    ratio: float,
    min_block: int = 4,
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """BEiT's block-wise mask [1]: bool (grid_h * grid_w,) with exactly ``round(ratio * N)`` True.

    Rectangles of at least ``min_block`` patches (BEiT uses 16 on a 14 x 14 grid; 4 suits small grids)
    and aspect ratio within ``aspect`` are added until the count is reached. When no rectangle fits the
    remaining budget (BEiT would stop short), the mask is topped up one patch at a time with unmasked
    neighbours of masked patches, so the blocks stay compact and the count is exact.
    """
    if min_block < 1:
        raise ValueError(f"block mask min_block must be at least 1, got {min_block}")
    low, high = float(aspect[0]), float(aspect[1])
    if not 0 < low <= high:
        raise ValueError(f"block mask aspect must be (low, high) with 0 < low <= high, got {aspect}")
    target = masked_count(grid_h * grid_w, ratio)
    mask = torch.zeros(grid_h, grid_w, dtype=torch.bool)
    count, log_aspect = 0, (math.log(low), math.log(high))
    while count < target:
        added = _add_block(mask, target - count, min_block, log_aspect, generator)
        if added == 0:
            break
        count += added
    while count < target:  # top up next to the blocks (anywhere if nothing is masked yet)
        candidates = _neighbours_of(mask) if count else ~mask
        flat = candidates.flatten().nonzero().squeeze(1)  # (M,) indices of candidate patches
        pick = flat[_randint(0, len(flat) - 1, generator)]
        mask.view(-1)[pick] = True
        count += 1
    return mask.flatten()
