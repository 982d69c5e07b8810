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


def open_draft(img: Image.Image, draft: int | None) -> None:
    """Ask ``img``'s decoder for a reduced version whose sides are both at least ``draft`` pixels.

    JPEG decoders can skip detail by scaling by 1/2, 1/4 or 1/8 while decoding (Pillow's
    ``Image.draft``), which costs a fraction of a full decode; other formats ignore it. Call before
    ``load()``. ``None`` decodes at full size.
    """
    if draft:
        img.draft(None, (int(draft), int(draft)))


def load_rgb(path: str | Path, key: str, draft: int | None = None) -> Image.Image:
    """Open, fully decode and convert ``path`` to RGB, raising BadSample on any failure.

    ``draft`` (pixels): JPEGs are decoded at a reduced scale whose sides stay at least this long
    (:func:`open_draft`); used by the batched augmentation path, which needs about the training size.

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
            open_draft(img, draft)
            img.load()
            rgb = to_rgb(img)
            return img.copy() if rgb is img else rgb  # closing `img` invalidates it
    except Exception as err:  # any decoder failure on untrusted bytes (struct.error, IndexError, ...)
        reason = "truncated_image" if "truncated" in str(err).lower() else "corrupt_image"
        raise BadSample(reason, key, f"{type(err).__name__}: {err}") from err
