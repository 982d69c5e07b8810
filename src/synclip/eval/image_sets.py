"""Image collections the evaluation encodes: files read lazily, index subsets, and evenly spread limits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from synclip.data.images import BadSample, load_rgb


class ImageFiles:
    """A lazy map-style dataset of image files, each read when indexed as training reads it
    (:func:`synclip.data.images.load_rgb`: transparency on white; BadSample for an unusable file)."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Image.Image:
        return load_rgb(self.paths[index], str(self.paths[index]))


def readable(images: Sequence, index: Sequence[int], max_examples: int = 20) -> tuple[list[int], dict]:
    """The positions of ``index`` whose image ``images[i]`` can be read, and a report of the others:
    ``{"n_bad": k, "examples": ["key: reason", ...]}`` (the first ``max_examples``)."""
    good, examples, n_bad = [], [], 0
    for i in index:
        try:
            images[i]
        except BadSample as bad:
            n_bad += 1
            if len(examples) < max_examples:
                examples.append(f"{bad.key}: {bad.reason}")
            continue
        good.append(i)
    return good, {"n_bad": n_bad, "examples": examples}


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
