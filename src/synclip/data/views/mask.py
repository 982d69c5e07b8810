"""The ``image_mask`` views: which patches of the image a masked-image-modelling objective hides.

Each sample gets its own bool mask (grid * grid,) in the ViT's patch order, drawn from the
per-sample RNG the loader seeds (so it is reproducible and differs between samples); a batch carries
it as ``image_mask`` (B, N). ``grid`` (patches per side) is filled from the model
(``image_size // patch_size``) by :func:`synclip.train.data.resolve_views`.

Two kinds share one builder and differ only in their defaults:

- ``image_mask``: BEiT / EVA block-wise masking of 40% of the patches (``mim_distill``);
- ``image_mask_mae``: MAE's uniform random masking of 75% (``mae``).

The view option ``masking`` (``block`` or ``random``) picks the generator; it cannot be called
``kind``, which a views config reserves for the view type.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from synclip.data.masks import block_mask, masked_count, random_mask
from synclip.data.views.base import register_view

MASKINGS = ("block", "random")


def _mask(cfg: dict[str, Any], sample: dict) -> torch.Tensor:
    grid = int(cfg["grid"])
    if cfg["masking"] == "random":
        return random_mask(grid, grid, float(cfg["ratio"]))  # (N,) bool, from torch's seeded RNG
    return block_mask(grid, grid, float(cfg["ratio"]), int(cfg["min_block"]), tuple(cfg["aspect"]))


def build_mask_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build a mask view; ``tokenizer`` and ``train`` are unused (evaluation masks the same way)."""
    if cfg["grid"] is None:
        raise ValueError(
            "the mask view needs `grid` (patches per side of the model's image); it is filled from "
            "the model when training, or set it: views.image_mask.grid=<image_size // patch_size>"
        )
    if int(cfg["grid"]) < 2:
        raise ValueError(f"mask view grid must be at least 2 patches per side, got {cfg['grid']}")
    if cfg["masking"] not in MASKINGS:
        raise ValueError(f"mask view masking must be one of {MASKINGS}, got {cfg['masking']!r}")
    masked_count(int(cfg["grid"]) ** 2, float(cfg["ratio"]))  # bad ratios fail now, not in a worker
    return partial(_mask, dict(cfg))


MASK_OPTIONS = {"grid": None, "min_block": 4, "aspect": (0.3, 1 / 0.3)}
register_view("image_mask", ratio=0.4, masking="block", **MASK_OPTIONS)(build_mask_view)
register_view("image_mask_mae", ratio=0.75, masking="random", **MASK_OPTIONS)(build_mask_view)
