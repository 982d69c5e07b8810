"""What an evaluation task hands to the runner: images (by a cache key), plus labels or captions.

``image_set`` names an image collection, so the runner encodes each collection once per ``evaluate``
call and every task on it (category, subcategory, head noun, retrieval on Twemoji) reuses the features;
a :class:`Probe` names two collections, train and test, and shares each with any task on the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
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


@dataclass
class Classification:
    """Zero-shot classification of ``images[index]`` into ``class_names``."""

    image_set: str  # cache key of the image collection, e.g. "emoji/twemoji"
    images: Sequence  # the whole collection (PIL images or a dataset, see features.encode_images)
    index: list[int]  # (N,) which images of the collection this task uses
    labels: list[int]  # (N,) class of each, in [0, C)
    class_names: list[str]  # (C,) as the prompts spell them
    templates: str  # a template set name or file (synclip.eval.templates.resolve_templates)
    data: dict = field(default_factory=dict)  # provenance for eval.json


@dataclass
class Retrieval:
    """Text <-> image retrieval between ``captions`` and the whole image collection."""

    image_set: str
    images: Sequence
    captions: list[str]  # (T,) unique texts
    positives: torch.Tensor  # (T, I) bool: caption t describes image i
    data: dict = field(default_factory=dict)


@dataclass
class ImageRetrieval:
    """Image -> image retrieval: each query image ranks every image of the gallery collection.

    Both collections are encoded whole under their cache keys (so the features are shared with the
    other tasks on them); ``query_index`` picks the queries among ``query_images``.
    """

    query_set: str  # cache key of the query collection, e.g. "emoji/twemoji"
    query_images: Sequence
    query_index: list[int]  # (Q,) positions of the queries in query_images
    gallery_set: str  # cache key of the gallery collection, e.g. "emoji/openmoji"
    gallery_images: Sequence
    positives: torch.Tensor  # (Q, G) bool: gallery image g shows what query q shows
    query_names: list[str]  # (Q,) what each query shows (its caption), for plots
    data: dict = field(default_factory=dict)


@dataclass
class Probe:
    """A classifier fitted on frozen features of ``train_images``, scored on ``test_images``.

    ``protocol`` is ``"lbfgs"`` or ``"adamw"`` (synclip.eval.linear_probe), ``"knn"``
    (synclip.eval.knn) or ``"finetune"`` (synclip.eval.finetune, which trains on the images, not on
    cached features); ``options`` are that function's keyword arguments. Every image of each
    collection is used, with its label at the same position, unless ``train_index``/``test_index``
    pick some: then both splits can be one collection, encoded once (``train_set == test_set``).
    """

    train_set: str  # cache key of the training collection, e.g. "fashion_mnist/train/10000/seed0"
    train_images: Sequence
    train_labels: list[int]  # (N_train,) in [0, C)
    test_set: str  # cache key of the test collection: the zero-shot task's key for the same images
    test_images: Sequence
    test_labels: list[int]  # (N_test,) in [0, C)
    class_names: list[str]  # (C,)
    protocol: str
    options: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)  # provenance for eval.json
    train_index: list[int] | None = None  # (N_train,) positions in train_images; None: all
    test_index: list[int] | None = None  # (N_test,) positions in test_images; None: all


class TaskSkipped(Exception):
    """Raised while running a task that cannot run on this model (e.g. it has no classification head);
    ``evaluate`` records the message in ``result["skipped"]`` under the task's result name."""
