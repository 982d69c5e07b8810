"""Labelled images held in memory as uint8 arrays (the labelled sets of :mod:`.labelled` use it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


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
        # per class, its names when it has several (UniCL's synonyms; synclip.data.class_synonyms)
        self.synonyms: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        label = int(self.labels[index])
        image = Image.fromarray(self.images[index]).convert("RGB")
        sample = {
            "image": image,
            "label": label,
            "class_name": self.classes[label],
            "key": f"{self.name}/{index}",
        }
        if self.synonyms is not None and len(self.synonyms[label]) > 1:
            sample["synonyms"] = tuple(self.synonyms[label])  # the text_prompt view draws one
        return sample
