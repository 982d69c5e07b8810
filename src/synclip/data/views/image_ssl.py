"""The ``image_ssl`` view: N independently augmented crops of one image, a tensor (N, 3, size, size).

SimCLR / MoCo v3 augmentation as SLIP uses it (Mu et al. 2021, https://arxiv.org/abs/2112.12750;
Chen et al. 2020, https://arxiv.org/abs/2002.05709): random resized crop scale (0.08, 1), colour
jitter 0.4/0.4/0.4/0.1 with p 0.8, greyscale p 0.2, Gaussian blur sigma in [0.1, 2] with p 0.5,
horizontal flip. DeCLIP uses the MoCo v2 variant: ``scale: [0.2, 1.0]``. ``solarize_p`` inverts the
pixels at or above 128 of 255 (BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733, appendix
B: probability 0.2 on its second view, threshold 0.5; 0 here, as SimCLR and SLIP do not solarise). The size follows the model
like the ``image`` view. Randomness comes from torch's global RNG, which synclip seeds per sample.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torchvision.transforms import v2

from synclip.data.views.base import register_view, sample_field
from synclip.data.views.image import INTERPOLATIONS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, _pair

SOLARIZE_THRESHOLD = 128  # of 255: BYOL's 0.5 on [0, 1]


def blur_kernel(size: int) -> int:
    """The Gaussian blur kernel side for images of ``size``: about 10% of the side, odd (SimCLR)."""
    return 2 * max(1, round(0.05 * size)) + 1


def ssl_transform(cfg: dict[str, Any], train: bool) -> v2.Compose:
    """PIL RGB -> normalised float32 (3, size, size) with the SimCLR augmentations when training."""
    size = int(cfg["size"])
    if size < 1:
        raise ValueError(f"image_ssl view size must be positive, got {size}")
    mode = INTERPOLATIONS[cfg["interpolation"]]
    scale = _pair(cfg["scale"], "scale")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"image_ssl view scale must lie in (0, 1], got {cfg['scale']}")
    if train:
        kernel = blur_kernel(size)
        jitter = v2.ColorJitter(*map(float, cfg["jitter"]))
        steps = [
            v2.RandomResizedCrop(size, scale=scale, interpolation=mode, antialias=True),
            v2.RandomApply([jitter], p=float(cfg["jitter_p"])),
            v2.RandomGrayscale(p=float(cfg["grey_p"])),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=float(cfg["blur_p"])),
            v2.RandomHorizontalFlip(),
        ]
        if float(cfg["solarize_p"]) > 0:  # only then: an extra step would move every later draw
            steps.insert(-1, v2.RandomSolarize(SOLARIZE_THRESHOLD, p=float(cfg["solarize_p"])))
    else:
        steps = [v2.Resize(size, interpolation=mode, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(
        [
            v2.ToImage(),
            *steps,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(map(float, cfg["mean"])), std=list(map(float, cfg["std"]))),
        ]
    )


@contextmanager
def single_thread():
    """Run torch ops on one thread: augmenting one small image is many tiny ops, for which intra-op
    threads cost far more than they save (a 32 px Gaussian blur: 40 ms on 2 threads, 0.2 ms on 1).
    DataLoader workers are single-threaded already; this matters with ``data.workers=0``."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _crops(transform: v2.Compose, num: int, sample: dict) -> torch.Tensor:
    image = sample_field(sample, "image", "image_ssl")
    with single_thread():
        return torch.stack([transform(image).as_subclass(torch.Tensor) for _ in range(num)])  # (N, 3, H, W)


@register_view(
    "image_ssl",
    tower="image",
    num=2,
    size=48,
    scale=(0.08, 1.0),
    jitter=(0.4, 0.4, 0.4, 0.1),
    jitter_p=0.8,
    grey_p=0.2,
    blur_p=0.5,
    solarize_p=0.0,
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
    interpolation="bicubic",
)
def build_image_ssl_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the N-crop view; ``tokenizer`` is unused."""
    num = int(cfg["num"])
    if num < 1:
        raise ValueError(f"image_ssl view num must be at least 1, got {num}")
    if cfg["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"image_ssl view interpolation must be one of {sorted(INTERPOLATIONS)}")
    return partial(_crops, ssl_transform(cfg, train), num)
