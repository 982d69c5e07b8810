"""Decode once: a worker turns a sample's image into one uint8 canvas that every batched view crops.

The image (already decoded by the source, with JPEG draft decoding to about ``side`` where the
batched path asked for it) is scaled down, keeping its aspect ratio, to fit a ``side`` x ``side``
canvas, and placed at the top-left corner. Images that already fit are not resized. The rest of the
canvas repeats the image's last column and row: crop boxes lie inside the image, and the bilinear
samples next to its right and bottom edges then see edge pixels, as a clamped border does. A fixed
canvas lets the collate stack images of any size into one (B, 3, side, side) tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def fit_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) scaled down to fit ``side`` x ``side`` with the aspect ratio kept; never scaled up."""
    if width <= side and height <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, min(side, round(width * scale))), max(1, min(side, round(height * scale)))


def to_canvas(image: Image.Image, side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """An RGB PIL image -> (uint8 canvas (3, side, side), (height, width) of the image placed on it)."""
    width, height = fit_size(image.width, image.height, side)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BILINEAR)  # PIL resizes with antialiasing
    canvas = torch.empty(3, side, side, dtype=torch.uint8)  # (3, side, side)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # (h, w, 3)
    canvas[:, :height, :width] = pixels.permute(2, 0, 1)
    canvas[:, :height, width:] = canvas[:, :height, width - 1 : width]  # last column repeated
    canvas[:, height:, :] = canvas[:, height - 1 : height, :]  # last row repeated
    return canvas, (height, width)
