"""Decode an image file into an RGB PIL image, or say precisely why it cannot be done."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WHITE = (255, 255, 255)


class BadSample(Exception):
    """A sample that cannot be used; ``reason`` is a short tag, ``key`` the sample id."""

    def __init__(self, reason: str, key: str, detail: str = ""):
        self.reason = reason
        self.key = key
        self.detail = detail
        super().__init__(f"{key}: {reason}" + (f" ({detail})" if detail else ""))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any common PIL mode to RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        return _wide_grey_to_rgb(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _wide_grey_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float grey -> 8-bit RGB, scaling 16-bit ranges down."""
    arr = np.asarray(img, dtype=np.float32)  # (H, W)
    if img.mode.startswith("I;16") or arr.max(initial=0.0) > 255:
        arr = arr / 257.0
    grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def load_rgb(path: str | Path, key: str) -> Image.Image:
    """Open, fully decode and convert ``path`` to RGB, raising BadSample on any failure.

    Image decoders raise many kinds of exception on damaged files (OSError, SyntaxError, ValueError,
    struct.error, IndexError, DecompressionBombError, ...): every one means this sample is unusable.
    """
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as err:  # e.g. a name longer than the file system allows
        raise BadSample("missing_file", key, f"{str(path)[:200]}: {err.strerror}") from err
    if not found:
        raise BadSample("missing_file", key, str(path))
    try:
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
            return img.copy() if rgb is img else rgb  # closing `img` invalidates it
    except Exception as err:  # any decoder failure on untrusted bytes (struct.error, IndexError, ...)
        reason = "truncated_image" if "truncated" in str(err).lower() else "corrupt_image"
        raise BadSample(reason, key, f"{type(err).__name__}: {err}") from err
