"""Tiny Hugging Face datasets written to disk by the tests, in the layouts researchers have.

Images are generated: class ``red`` or ``blue`` squares, each with its own noise, so every image is
different and its class is visible to a model after a few steps.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["blue", "red"]  # sorted, as imagefolder's ClassLabel orders the folders


def image(i: int, size: int = 32) -> Image.Image:
    """Image i: class ``CLASSES[i % 2]``, a bright square of its colour on a noisy dark ground."""
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)  # (H, W, 3)
    channel = 2 if i % 2 == 0 else 0
    pixels[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4, channel] = 200 + rng.integers(0, 55)
    return Image.fromarray(pixels, "RGB")


def caption(i: int) -> str:
    return f"a {CLASSES[i % 2]} square number {i}"


def write_imagefolder(root: Path, n: int = 24, captions: bool = True) -> Path:
    """``root/train/<class>/<i>.png`` (+ ``metadata.csv`` with a ``text`` column when ``captions``)."""
    split = root / "train"
    lines = ["file_name,text"]
    for i in range(n):
        folder = split / CLASSES[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        image(i).save(folder / f"{i:03d}.png")
        lines.append(f"{CLASSES[i % 2]}/{i:03d}.png,{caption(i)}")
    if captions:
        (split / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def table(n: int = 24):
    """A ``datasets.Dataset`` of (image bytes, text, ClassLabel label) rows."""
    import datasets

    def png(i):
        buf = io.BytesIO()
        image(i).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": f"{i:03d}.png"}

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=CLASSES),
        }
    )
    rows = {
        "image": [png(i) for i in range(n)],
        "text": [caption(i) for i in range(n)],
        "label": [i % 2 for i in range(n)],
    }
    return datasets.Dataset.from_dict(rows, features=features)


def write_parquet(root: Path, n: int = 24, files: int = 2) -> Path:
    """``root/train-0000k.parquet``: ``files`` parquet files of image bytes, text and label."""
    root.mkdir(parents=True, exist_ok=True)
    rows = table(n)
    for k in range(files):
        rows.shard(files, k, contiguous=True).to_parquet(str(root / f"train-{k:05d}.parquet"))
    return root


def write_arrow(root: Path, n: int = 24, files: int = 2) -> Path:
    """``root/train-0000k.arrow``: Arrow stream files as ``load_dataset("arrow", ...)`` reads them."""
    import pyarrow as pa

    root.mkdir(parents=True, exist_ok=True)
    rows = table(n)
    for k in range(files):
        part = rows.shard(files, k, contiguous=True).flatten_indices().data.table
        with pa.OSFile(str(root / f"train-{k:05d}.arrow"), "wb") as sink:
            with pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
    return root
