"""Fashion-MNIST (Xiao et al. 2017), 28 px grey photos of clothing: zero-shot transfer and probes.

The zero-shot task uses the 10,000 test images; the linear-probe and kNN tasks fit on a seeded random
subset of the 60,000 training images and score on the same test images under the same cache key, so
one ``evaluate`` call encodes them once for all three.

The images come from Debian's ``dataset-fashion-mnist`` through ``synclip.data.sources.labelled`` and are
converted to RGB there, then preprocessed like every other evaluation image. The prompts use the
words the emoji names have for these classes where there is one (``trouser`` -> "jeans", ``sneaker``
-> "running shoe", ``bag`` -> "handbag", ``ankle boot`` -> "boot"), the dataset's own name otherwise;
``data.dataset_classes`` in the result keeps the original names.
"""

from __future__ import annotations

from pathlib import Path

import torch

from synclip.eval.task_data import Classification, Probe, spread
from synclip.eval.task_data import Subset as _Subset

N_TRAIN, N_TEST = 10_000, 10_000  # default probe subset sizes (``limit`` caps both)
N_FINETUNE = 2_000  # training images for end-to-end fine-tuning: a few CPU epochs of a small tower

# Prompt names, in Fashion-MNIST label order (0 t-shirt/top ... 9 ankle boot).
CLASS_NAMES = [
    "t-shirt", "jeans", "pullover", "dress", "coat", "sandal", "shirt", "running shoe", "handbag", "boot",
]  # fmt: skip


def available() -> str | None:
    """None when the test split is installed, else why not (the message names the Debian package)."""
    from synclip.data.sources.labelled import FASHION_MNIST_DIR

    needed = [Path(FASHION_MNIST_DIR) / f"t10k-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install dataset-fashion-mnist"
    return None


def _test_images(limit: int | None) -> tuple[_Subset, str]:
    """(the test split, or ``limit`` images spread evenly over it; its cache key)."""
    from synclip.data.sources.labelled import fashion_mnist

    dataset = fashion_mnist("test")  # items: {"image": PIL RGB 28x28, "label": int, ...}
    n = len(dataset)
    index = spread(n, limit)
    return _Subset(dataset, index), "fashion_mnist/test" + ("" if len(index) == n else f"/{len(index)}")


def _labels(images: _Subset) -> list[int]:
    return [int(images.dataset.labels[i]) for i in images.index]


def fashion_mnist_task(limit: int | None = None) -> Classification:
    """The test split (or ``limit`` images spread evenly over it) as a 10-way zero-shot task."""
    from synclip.data.sources.labelled import FASHION_MNIST_DIR

    images, image_set = _test_images(limit)
    dataset, index = images.dataset, images.index
    return Classification(
        image_set=image_set,
        images=images,
        index=list(range(len(index))),
        labels=_labels(images),
        class_names=list(CLASS_NAMES),
        templates="fashion",
        data={
            "source": f"{FASHION_MNIST_DIR} (Debian dataset-fashion-mnist), t10k split",
            "dataset_classes": list(dataset.classes),
            "n": len(index),
        },
    )


def probe_task(
    protocol: str,
    limit: int | None = None,
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
    seed: int = 0,
    **options,
) -> Probe:
    """A probe (``"lbfgs"``, ``"adamw"``, ``"knn"`` or ``"finetune"``) fitted on ``n_train`` training
    images drawn at random (``seed``) and scored on ``n_test`` test images spread evenly over the test
    split, exactly the images of :func:`fashion_mnist_task` with that many, so they share its cache
    key. ``limit`` caps both sizes; ``options`` go to the protocol's function."""
    from synclip.data.sources.labelled import FASHION_MNIST_DIR, fashion_mnist

    if protocol not in ("knn", "finetune"):
        from synclip.eval.linear_probe import check_protocol

        check_protocol(protocol)  # ModuleNotFoundError without scikit-learn: the task is skipped
    cap = n_test if limit is None else min(n_test, limit)
    test, test_set = _test_images(cap)
    train_split = fashion_mnist("train")
    n = len(train_split)
    k = min(n_train, n) if limit is None else min(n_train, n, limit)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # (60000,)
    train = _Subset(train_split, sorted(perm[:k].tolist()))
    return Probe(
        train_set="fashion_mnist/train" + ("" if k == n else f"/{k}/seed{seed}"),
        train_images=train,
        train_labels=_labels(train),
        test_set=test_set,
        test_images=test,
        test_labels=_labels(test),
        class_names=list(train_split.classes),  # the dataset's own names: probes read no prompts
        protocol=protocol,
        options=dict(options),
        data={
            "source": f"{FASHION_MNIST_DIR} (Debian dataset-fashion-mnist), train and t10k splits",
            "n_train": k,
            "train_of": n,
            "train_selection": "all" if k == n else f"random subset, seed {seed}",
            "n_test": len(test),
            "test_of": len(test.dataset),
            "test_selection": "all" if len(test) == len(test.dataset) else "spread evenly (i * n // m)",
        },
    )
