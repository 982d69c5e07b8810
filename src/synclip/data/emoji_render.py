"""Rasterise one emoji (Twemoji PNG or OpenMoji SVG) to a square RGB PNG on white."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from synclip.data.images import to_rgb

SVG_OVERSAMPLE = 2  # render SVGs at twice the target size, then downsample for smooth edges


def render_png(src: Path, dst: Path, size: int) -> None:
    """Twemoji 72x72 RGBA PNG -> ``size`` x ``size`` RGB PNG, alpha composited on white."""
    with Image.open(src) as img:
        img.load()
        rgb = to_rgb(img)
    _save(rgb, dst, size)


def render_svg(src: Path, dst: Path, size: int) -> None:
    """OpenMoji SVG -> ``size`` x ``size`` RGB PNG via cairosvg, alpha composited on white."""
    import cairosvg

    side = size * SVG_OVERSAMPLE
    png = cairosvg.svg2png(url=str(src), output_width=side, output_height=side)
    with Image.open(io.BytesIO(png)) as img:
        img.load()
        rgb = to_rgb(img)
    _save(rgb, dst, size)


def _save(rgb: Image.Image, dst: Path, size: int) -> None:
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    rgb.save(dst, format="PNG")


def render_job(job: tuple[str, str, str, int]) -> str | None:
    """Run one ``(kind, src, dst, size)`` job; return None on success or an error message.

    Module-level so that process pools can pickle it.
    """
    kind, src, dst, size = job
    try:
        (render_svg if kind == "svg" else render_png)(Path(src), Path(dst), size)
    except Exception as err:  # a broken asset must not sink the whole build
        return f"{src}: {type(err).__name__}: {err}"
    return None
