"""Per-sample random parameters of the batched image views, drawn in the DataLoader worker.

A worker draws every random number of a sample's views from torch's global RNG, which
:class:`synclip.train.data.SeededItems` (and :class:`synclip.data.shards.ShardStream`) seed from that
sample's own seed, exactly as the PIL path does. The parameters of a sample therefore depend on its
seed alone, never on the other samples of its batch or on the number of ranks, and a resumed run draws
the same ones. The training device then applies them to the whole batch (:mod:`.ops`) without drawing
anything.

The distributions are torchvision's, through its own parameter samplers
(``RandomResizedCrop.get_params``, ``ColorJitter.get_params``), so a crop is drawn exactly as the PIL
path's ``RandomResizedCrop`` draws it. Every parameter is drawn whether or not its step applies, so a
sample uses a fixed amount of randomness per crop.
"""

from __future__ import annotations

import torch
from torchvision import transforms


def crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]) -> list[float]:
    """A random resized crop of an image of (height, width) pixels as [x1, y1, x2, y2] pixel edges."""
    shape = torch.empty(()).expand(1, height, width)  # (1, H, W) without memory: the sampler reads the shape
    top, left, h, w = transforms.RandomResizedCrop.get_params(shape, list(scale), list(ratio))
    return [float(left), float(top), float(left + w), float(top + h)]


def jitter_params(strengths: tuple[float, float, float, float]) -> tuple[list[int], list[float]]:
    """(order of brightness, contrast, saturation, hue as indices 0..3, their four factors).

    Brightness, contrast and saturation factors are drawn from [max(0, 1 - s), 1 + s], the hue shift
    from [-s, s] (a fraction of the colour circle), as torchvision's ``ColorJitter`` does.
    """
    b, c, s, h = (float(v) for v in strengths)
    ranges = [(max(0.0, 1 - v), 1 + v) for v in (b, c, s)] + [(-h, h)]
    order, *factors = transforms.ColorJitter.get_params(*ranges)
    neutral = (1.0, 1.0, 1.0, 0.0)  # get_params leaves a factor None when its strength is 0
    return [int(i) for i in order], [n if f is None else float(f) for f, n in zip(factors, neutral)]


def coin(p: float) -> bool:
    """True with probability ``p`` (one draw of the global RNG, as torchvision's RandomApply)."""
    return bool(torch.rand(()) < p)
