"""The ``image_folder`` source: labelled images laid out as ``root/<class_name>/<image>``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from synclip.data.images import load_rgb
from synclip.data.sources.base import register_source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageFolder(Dataset):
    """Labelled images laid out as ``root/<class_name>/<image>``; classes sorted by name."""

    def __init__(self, root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.root = Path(root)
        self.decode_size: int | None = None  # JPEG draft decoding (the batched augmentation path sets it)
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
        image = load_rgb(path, key, self.decode_size)
        return {"image": image, "label": label, "class_name": self.classes[label], "key": key}


@register_source("image_folder", root=None, batch_size=None)
def build_image_folder_source(name: str, opts: dict) -> ImageFolder:
    """Labelled images under ``opts["root"]``."""
    if not opts["root"]:
        raise ValueError(f"data.sources.{name}.root is required for an image_folder source")
    return ImageFolder(opts["root"])
