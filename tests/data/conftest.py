"""Fixtures for the data tests: a folder of good and deliberately broken images with a TSV over them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def messy_dir(tmp_path_factory):
    """Images in every awkward state a scraped data set contains, keyed by a short name."""
    root = tmp_path_factory.mktemp("messy")
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), "RGB")
    rgb.save(root / "good.jpg", quality=90)
    transparent = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red
    transparent.paste((0, 0, 255, 255), (0, 0, 8, 8))  # opaque blue corner
    transparent.save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(root / "grey.png")
    Image.fromarray(np.full((12, 12), 65535, dtype=np.uint16)).save(root / "grey16.png")  # I;16
    Image.new("CMYK", (10, 10), (0, 0, 0, 0)).save(root / "cmyk.jpg")
    rgb.convert("P").save(root / "palette.png")
    (root / "random.png").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    whole = png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB"))
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "sub").mkdir()
    rgb.save(root / "sub" / "nested.png")
    return root
