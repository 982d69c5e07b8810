"""Image collections the evaluation encodes: files read lazily, index subsets, and evenly spread limits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image


class ImageFiles:
    """A lazy map-style dataset of image files, each read as RGB when indexed."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as image:
            return image.convert("RGB")


class Subset:
    """``dataset[index[j]]`` as item ``j``: a view that encode_images reads lazily."""

    def __init__(self, dataset, index: Sequence[int]):
        self.dataset, self.index = dataset, list(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int):
        return self.dataset[self.index[j]]


def spread(n: int, limit: int | None) -> list[int]:
    """``range(n)``, or ``limit`` indices spread evenly over it (``i * n // limit``)."""
    return list(range(n)) if limit is None or limit >= n else [i * n // limit for i in range(limit)]
