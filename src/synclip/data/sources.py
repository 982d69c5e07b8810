"""Sample sources: map-style torch Datasets that yield one dict per sample.

Every sample carries ``"key"`` (a readable id). Image-text sources add ``"image"`` (PIL RGB) and
``"caption"``; labelled sources add ``"image"``, ``"label"`` (int) and ``"class_name"``. A sample that
cannot be used raises :class:`BadSample`, which :class:`synclip.data.views.ViewDataset` turns into a
marker so that a DataLoader worker survives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from synclip.data.csv_rows import read_table
from synclip.data.images import BadSample, load_rgb

__all__ = ["BadSample", "CsvImageText", "ImageFolder", "ArrayImageLabel", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class CsvImageText(Dataset):
    """Image-text pairs listed in a CSV/TSV file with a header row.

    ``sep=None`` picks a tab for ``.tsv`` files and a comma otherwise. Relative image paths are resolved
    against the CSV's folder. Samples: ``{"image", "caption", "key", **extras}`` where ``key`` is the
    image path as written in the file and ``extras`` are the string values of ``extra_keys`` columns.
    """

    def __init__(
        self,
        path: str | Path,
        img_key: str = "filepath",
        caption_key: str = "caption",
        sep: str | None = None,
        extra_keys: Sequence[str] = (),
        max_caption_chars: int = 1000,
    ):
        self.path = Path(path)
        self.img_key, self.caption_key = img_key, caption_key
        self.extra_keys = tuple(extra_keys)
        self.max_caption_chars = max_caption_chars
        self.sep = sep if sep is not None else ("\t" if self.path.suffix.lower() == ".tsv" else ",")
        table = read_table(self.path, self.sep)
        self.columns: list[str] = table.columns
        self._check_columns()
        wanted = [self.columns.index(c) for c in (img_key, caption_key, *self.extra_keys)]
        self._rows = [tuple(row[i] if i < len(row) else "" for i in wanted) for row in table.rows]
        self.undecodable = table.undecodable  # row index -> where its non-UTF-8 byte is
        self._base = self.path.parent

    def _check_columns(self) -> None:
        for option, column in (("img_key", self.img_key), ("caption_key", self.caption_key)):
            if column not in self.columns:
                raise ValueError(
                    f"{self.path}: no column {column!r} for images/captions; available columns: "
                    f"{self.columns}. Set {option}= to one of them (check sep= too: using {self.sep!r})."
                )
        missing = [c for c in self.extra_keys if c not in self.columns]
        if missing:
            raise ValueError(f"{self.path}: extra_keys {missing} not among the columns {self.columns}")

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict:
        filepath, caption, *extras = self._rows[index]
        key = filepath
        if index in self.undecodable:
            raise BadSample("not_utf8", key, f"{self.path} {self.undecodable[index]}")
        caption = caption.strip()
        if not caption:
            raise BadSample("empty_caption", key)
        if len(caption) > self.max_caption_chars:
            raise BadSample("caption_too_long", key, f"{len(caption)} > {self.max_caption_chars} chars")
        image = load_rgb(self._base / Path(filepath).expanduser(), key)
        return {"image": image, "caption": caption, "key": key, **dict(zip(self.extra_keys, extras))}


class ImageFolder(Dataset):
    """Labelled images laid out as ``root/<class_name>/<image>``; classes sorted by name."""

    def __init__(self, root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        exts = {e.lower() for e in extensions}
        self.classes: list[str] = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        self.samples: list[tuple[Path, int]] = [
            (p, label)
            for label, name in enumerate(self.classes)
            for p in sorted((self.root / name).iterdir())
            if p.is_file() and p.suffix.lower() in exts
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        path, label = self.samples[index]
        key = f"{self.classes[label]}/{path.name}"
        return {"image": load_rgb(path, key), "label": label, "class_name": self.classes[label], "key": key}


class ArrayImageLabel(Dataset):
    """Labelled images held in memory: uint8 ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB arrays."""

    def __init__(
        self, images: np.ndarray, labels: Sequence[int], classes: Sequence[str], name: str = "array"
    ):
        images = np.asarray(images)
        if images.dtype != np.uint8 or not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
            raise ValueError(f"images must be uint8 (N,H,W) or (N,H,W,3), got {images.dtype} {images.shape}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)  # (N,)
        if self.labels.shape != (len(images),):
            raise ValueError(f"{len(images)} images but labels of shape {self.labels.shape}")
        self.classes = list(classes)
        if len(self.labels) and not (0 <= self.labels.min() and self.labels.max() < len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes)})")
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        label = int(self.labels[index])
        image = Image.fromarray(self.images[index]).convert("RGB")
        return {
            "image": image,
            "label": label,
            "class_name": self.classes[label],
            "key": f"{self.name}/{index}",
        }
