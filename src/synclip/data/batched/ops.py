"""Batched image operations on the training device, with per-sample parameters drawn in the workers.

Every function takes a float batch in [0, 1] and the parameters of each of its images, so the result
of one image depends on its own parameters only (never on the batch it sits in). Which images a
random step applies to is known on the CPU, where the parameters arrive: steps run on that subset
through index tensors, so nothing waits for the device to say which (no host synchronisation), and
skipped images cost nothing.

The resized crop is ``torchvision.ops.roi_align`` (bilinear samples averaged over each output pixel:
an area filter when a crop shrinks, plain bilinear when it grows); the colour steps are kornia's
(``kornia.enhance`` with torchvision's formulas, ``kornia.color``, ``kornia.filters``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import kornia
import torch
from torchvision.ops import roi_align


def _indices(mask: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Positions where the CPU bool ``mask`` (K,) holds, as a long tensor on ``device``."""
    return mask.nonzero().flatten().to(device, non_blocking=True)  # (k,)


def on_subset(
    x: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``x`` (K, ...) with ``fn(x[i], i)`` in place of the rows where the CPU ``mask`` (K,) holds."""
    if not bool(mask.any()):
        return x
    if bool(mask.all()):
        return fn(x, torch.arange(len(mask), device=x.device))
    index = _indices(mask, x.device)  # (k,)
    return x.index_copy(0, index, fn(x.index_select(0, index), index))


def resized_crops(pixels: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crops of a batch resized to ``size`` x ``size``.

    ``pixels`` (B, 3, H, W) float; ``boxes`` (B, N, 4) pixel edges [x1, y1, x2, y2], N crops per image.
    Returns (B * N, 3, size, size), the crops of image 0 first.
    """
    b, n = boxes.shape[:2]
    owner = torch.arange(b, dtype=boxes.dtype).repeat_interleave(n)[:, None]  # (B * N, 1)
    rois = torch.cat([owner, boxes.reshape(b * n, 4)], dim=1).to(pixels.device, pixels.dtype)  # (B * N, 5)
    # aligned=True: a box edge at pixel coordinate k is the left edge of pixel k, as a PIL crop box
    return roi_align(pixels, rois, output_size=size, sampling_ratio=-1, aligned=True)


def _brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return kornia.enhance.adjust_brightness_accumulative(x, f)  # x * f, as torchvision


def _contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return kornia.enhance.adjust_contrast_with_mean_subtraction(x, f)  # blend with the grey mean


def _saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return kornia.enhance.adjust_saturation_with_gray_subtraction(x, f)  # blend with the grey image


def _hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return kornia.enhance.adjust_hue(x, f * (2 * math.pi))  # torchvision's fraction of a turn -> radians


JITTER_STEPS = (_brightness, _contrast, _saturation, _hue)  # the indices of ColorJitter.get_params' order


def colour_jitter(
    x: torch.Tensor, apply: torch.Tensor, factors: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """torchvision's ``ColorJitter`` per image, in each image's own random order of the four steps.

    ``x`` (K, 3, S, S); CPU ``apply`` (K,) bool, ``factors`` (K, 4) (brightness, contrast, saturation,
    hue), ``order`` (K, 4) step indices. Each step clamps to [0, 1], as torchvision's does.
    """
    values = factors.to(x.device, x.dtype, non_blocking=True)  # (K, 4)
    for position in range(4):
        for step, fn in enumerate(JITTER_STEPS):
            chosen = apply & (order[:, position] == step)  # (K,)
            x = on_subset(x, chosen, lambda sub, i, fn=fn, step=step: fn(sub, values[i, step]))
    return x


def grey(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Greyscale (3 equal channels) where the CPU ``apply`` (K,) holds; ``x`` (K, 3, S, S)."""
    return on_subset(x, apply, lambda sub, i: kornia.color.rgb_to_grayscale(sub).expand_as(sub))


def blur(x: torch.Tensor, apply: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Gaussian blur, ``kernel`` x ``kernel`` with reflected borders, each image its own ``sigma`` (K,)."""
    sigmas = sigma.to(x.device, x.dtype, non_blocking=True)[:, None].expand(-1, 2)  # (K, 2)
    return on_subset(x, apply, lambda sub, i: kornia.filters.gaussian_blur2d(sub, kernel, sigmas[i]))


def solarise(x: torch.Tensor, apply: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert the values at or above ``threshold`` where the CPU ``apply`` (K,) holds."""
    return on_subset(x, apply, lambda sub, i: torch.where(sub >= threshold, 1.0 - sub, sub))


def hflip(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Mirror left-right where the CPU ``apply`` (K,) holds; ``x`` (K, 3, S, S)."""
    return on_subset(x, apply, lambda sub, i: sub.flip(-1))


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel; ``x`` (K, 3, S, S)."""
    m = torch.tensor(mean, device=x.device, dtype=x.dtype)[:, None, None]  # (3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype)[:, None, None]
    return (x - m) / s
