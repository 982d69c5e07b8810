"""Multi-crop views for DINO-style self-distillation: ``image_global`` and ``image_local``.

DINO (Caron et al. 2021, https://arxiv.org/abs/2104.14294; facebookresearch/dino ``main_dino.py``,
``DataAugmentationDINO``) cuts each image into 2 global crops (random resized crop of scale (0.4, 1) at
the model's 224 px) for the teacher and the student, and 8 local crops (scale (0.05, 0.4) at 96 px)
for the student only. Every crop is flipped (p 0.5), colour-jittered (brightness / contrast /
saturation / hue 0.4 / 0.4 / 0.2 / 0.1, p 0.8) and turned grey (p 0.2); the first global crop is always
blurred, the second blurred with p 0.1 and solarised with p 0.2, the local crops blurred with p 0.5.
SILC (Naeem et al. 2023, https://arxiv.org/abs/2310.13355) keeps the two global crops of (0.4, 1) and
eight local crops of (0.05, 0.4).

Two kinds, one builder: a view holds crops of one size, a tensor (N, 3, size, size), so each kind
batches to (B, N, 3, size, size). ``blur_p`` and ``solarize_p`` are per-crop probabilities, cycled over
the N crops (DINO's asymmetric pair of global crops is ``[1.0, 0.1]`` / ``[0.0, 0.2]``).

Sizes: ``image_global`` takes the model's image size like the ``image`` view. ``image_local`` takes
``fraction`` of it (DINO's 96 / 224), rounded to a whole number of patches (at least one) when the
training run fills it (:func:`synclip.train.data.resolve_views`); an explicit ``size`` must be a
multiple of the patch size. The ViT resizes its positional embedding to the local crops' patch grid.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torchvision.transforms import v2

from synclip.data.views.base import register_view, sample_field
from synclip.data.views.image import INTERPOLATIONS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, _pair
from synclip.data.views.image_ssl import single_thread

DINO_LOCAL_FRACTION = 96 / 224  # DINO: 96 px local crops of a 224 px model


def local_size(image_size: int, fraction: float, patch_size: int | None) -> int:
    """Side of a local crop: ``fraction`` of ``image_size``, rounded to whole patches (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"image_local fraction must lie in (0, 1], got {fraction}")
    side = image_size * float(fraction)
    if not patch_size:
        return max(1, round(side))
    return int(patch_size) * max(1, round(side / patch_size))


def _probabilities(value: Any, option: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"multi-crop view option {option} must be probabilities in [0, 1], got {value}")
    return values


def crop_transform(cfg: dict[str, Any], blur_p: float, solarize_p: float) -> v2.Compose:
    """PIL RGB -> normalised float32 (3, size, size): DINO's crop, flip, jitter, grey, blur, solarise."""
    size = int(cfg["size"])
    mode = INTERPOLATIONS[cfg["interpolation"]]
    kernel = 2 * max(1, round(0.05 * size)) + 1  # about 10% of the side, odd
    return v2.Compose(
        [
            v2.ToImage(),  # uint8 (3, H, W)
            v2.RandomResizedCrop(
                size, scale=_pair(cfg["scale"], "scale"), interpolation=mode, antialias=True
            ),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(*map(float, cfg["jitter"]))], p=float(cfg["jitter_p"])),
            v2.RandomGrayscale(p=float(cfg["grey_p"])),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p),
            v2.RandomSolarize(threshold=128, p=solarize_p),  # on uint8, as PIL's ImageOps.solarize
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(map(float, cfg["mean"])), std=list(map(float, cfg["std"]))),
        ]
    )


def eval_transform(cfg: dict[str, Any]) -> v2.Compose:
    size = int(cfg["size"])
    mode = INTERPOLATIONS[cfg["interpolation"]]
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(size, interpolation=mode, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(map(float, cfg["mean"])), std=list(map(float, cfg["std"]))),
        ]
    )


def _crops(transforms: list[v2.Compose], kind: str, sample: dict) -> torch.Tensor:
    image = sample_field(sample, "image", kind)
    with single_thread():
        return torch.stack([t(image).as_subclass(torch.Tensor) for t in transforms])  # (N, 3, S, S)


def build_multi_crop_view(kind: str, cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build N crops of one size; ``tokenizer`` is unused."""
    num = int(cfg["num"])
    if num < 1:
        raise ValueError(f"{kind} view num must be at least 1, got {num}")
    if cfg.get("size") is None:
        raise ValueError(
            f"the {kind} view needs `size`; a training run fills it from the model's image size "
            f"(times `fraction`), or set views.{kind}.size"
        )
    if int(cfg["size"]) < 1:
        raise ValueError(f"{kind} view size must be positive, got {cfg['size']}")
    if cfg["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"{kind} view interpolation must be one of {sorted(INTERPOLATIONS)}")
    scale = _pair(cfg["scale"], "scale")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"{kind} view scale must lie in (0, 1], got {cfg['scale']}")
    blur, solarize = _probabilities(cfg["blur_p"], "blur_p"), _probabilities(cfg["solarize_p"], "solarize_p")
    if train:
        transforms = [
            crop_transform(cfg, blur[i % len(blur)], solarize[i % len(solarize)]) for i in range(num)
        ]
    else:
        transforms = [eval_transform(cfg)] * num
    return partial(_crops, transforms, kind)


COMMON = dict(
    jitter=(0.4, 0.4, 0.2, 0.1),
    jitter_p=0.8,
    grey_p=0.2,
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
    interpolation="bicubic",
)
register_view(
    "image_global",
    tower="image",
    num=2,
    size=48,
    scale=(0.4, 1.0),
    blur_p=(1.0, 0.1),
    solarize_p=(0.0, 0.2),
    **COMMON,
)(partial(build_multi_crop_view, "image_global"))
register_view(
    "image_local",
    tower="image",
    num=8,
    size=None,
    fraction=DINO_LOCAL_FRACTION,
    scale=(0.05, 0.4),
    blur_p=(0.5,),
    solarize_p=(0.0,),
    **COMMON,
)(partial(build_multi_crop_view, "image_local"))
