"""Fashion-MNIST zero-shot transfer (Xiao et al. 2017): 10,000 test photos of clothing, 28 px grey.

The images come from Debian's ``dataset-fashion-mnist`` through ``synclip.data.labelled`` and are
converted to RGB there, then preprocessed like every other evaluation image. The prompts use the
words the emoji names have for these classes where there is one (``trouser`` -> "jeans", ``sneaker``
-> "running shoe", ``bag`` -> "handbag", ``ankle boot`` -> "boot"), the dataset's own name otherwise;
``data.dataset_classes`` in the result keeps the original names.
"""

from __future__ import annotations

from pathlib import Path

from synclip.eval.task_data import Classification

# Prompt names, in Fashion-MNIST label order (0 t-shirt/top ... 9 ankle boot).
CLASS_NAMES = [
    "t-shirt", "jeans", "pullover", "dress", "coat", "sandal", "shirt", "running shoe", "handbag", "boot",
]  # fmt: skip


class _Subset:
    """``dataset[index[j]]`` as item ``j``: a view that encode_images reads lazily."""

    def __init__(self, dataset, index: list[int]):
        self.dataset, self.index = dataset, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int):
        return self.dataset[self.index[j]]


def available() -> str | None:
    """None when the test split is installed, else why not (the message names the Debian package)."""
    from synclip.data.labelled import FASHION_MNIST_DIR

    needed = [Path(FASHION_MNIST_DIR) / f"t10k-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install dataset-fashion-mnist"
    return None


def fashion_mnist_task(limit: int | None = None) -> Classification:
    """The test split (or ``limit`` images spread evenly over it) as a 10-way zero-shot task."""
    from synclip.data.labelled import FASHION_MNIST_DIR, fashion_mnist

    dataset = fashion_mnist("test")  # items: {"image": PIL RGB 28x28, "label": int, ...}
    n = len(dataset)
    index = list(range(n)) if limit is None or limit >= n else [i * n // limit for i in range(limit)]
    return Classification(
        image_set="fashion_mnist/test" + ("" if len(index) == n else f"/{len(index)}"),
        images=_Subset(dataset, index),
        index=list(range(len(index))),
        labels=[int(dataset.labels[i]) for i in index],
        class_names=list(CLASS_NAMES),
        templates="fashion",
        data={
            "source": f"{FASHION_MNIST_DIR} (Debian dataset-fashion-mnist), t10k split",
            "dataset_classes": list(dataset.classes),
            "n": len(index),
        },
    )
