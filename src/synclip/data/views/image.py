"""The ``image`` view: a normalised float tensor (3, size, size), randomly cropped when training."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torchvision.transforms import v2

from synclip.data.views.base import register_view, sample_field

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INTERPOLATIONS = {
    "bicubic": v2.InterpolationMode.BICUBIC,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "nearest": v2.InterpolationMode.NEAREST,
}


def _pair(value: Any, option: str) -> tuple[float, float]:
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ValueError(f"image view option {option} must be (low, high) with low <= high, got {value}")
    return pair


def image_transform(cfg: dict[str, Any], train: bool) -> v2.Compose:
    """PIL RGB -> normalised float32 (3, size, size); random resized crop to train, centre crop to eval."""
    size = int(cfg["size"])
    if size < 1:
        raise ValueError(f"image view size must be positive, got {size}")
    if cfg["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"image view interpolation must be one of {sorted(INTERPOLATIONS)}")
    mode = INTERPOLATIONS[cfg["interpolation"]]
    scale, ratio = _pair(cfg["scale"], "scale"), _pair(cfg["ratio"], "ratio")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"image view scale must lie in (0, 1], got {cfg['scale']}")
    if train:
        geometry = [v2.RandomResizedCrop(size, scale=scale, ratio=ratio, interpolation=mode, antialias=True)]
    else:
        geometry = [v2.Resize(size, interpolation=mode, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(
        [
            v2.ToImage(),  # uint8 (3, H, W): resizing uint8 clamps bicubic overshoot
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(map(float, cfg["mean"])), std=list(map(float, cfg["std"]))),
        ]
    )


def _apply(transform: v2.Compose, sample: dict) -> torch.Tensor:
    return transform(sample_field(sample, "image", "image")).as_subclass(torch.Tensor)


@register_view(
    "image",
    tower="image",
    size=48,
    scale=(0.9, 1.0),
    ratio=(3 / 4, 4 / 3),
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
    interpolation="bicubic",
)
def build_image_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the image view; ``tokenizer`` is unused."""
    return partial(_apply, image_transform(cfg, train))
