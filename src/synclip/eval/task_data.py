"""What an evaluation task hands to the runner: images (by a cache key), plus labels or captions.

Each item (:class:`Classification`, :class:`Retrieval`, :class:`ImageRetrieval`, :class:`Probe`, and
:class:`synclip.eval.classifier_head.HeadClassification`) says why it cannot run (``skip_reason``:
None when it can), scores itself on an :class:`~synclip.eval.evaluator.Evaluator` (``score``: its
``eval.json`` entry) and draws its picture (``plot``: paths, or None for an item without one).

``image_set`` names an image collection, so the runner encodes each collection once per ``evaluate``
call and every task on it (category, subcategory, head noun, retrieval on Twemoji) reuses the features;
a :class:`Probe` names two collections, train and test, and shares each with any task on the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synclip.eval.image_sets import ImageFiles, Subset, readable, spread

__all__ = ["ImageFiles", "Subset", "readable", "spread"]  # with the task items below


@dataclass
class Classification:
    """Zero-shot classification of ``images[index]`` into ``class_names``."""

    image_set: str  # cache key of the image collection, e.g. "emoji/twemoji"
    images: Sequence  # the whole collection (PIL images or a dataset, see features.encode_images)
    index: list[int]  # (N,) which images of the collection this task uses
    labels: list[int]  # (N,) class of each, in [0, C)
    class_names: list[str]  # (C,) as the prompts spell them
    templates: str  # a template set name or file (synclip.data.templates.resolve_templates)
    data: dict = field(default_factory=dict)  # provenance for eval.json

    def skip_reason(self) -> str | None:
        return None if self.index else "no labelled images (is limit too small?)"

    def score(self, evaluator) -> dict:
        return evaluator.zero_shot(self)

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        from synclip.eval.plots import confusion_plot

        return confusion_plot(evaluator, name, self, out_dir)


@dataclass
class Retrieval:
    """Text <-> image retrieval between ``captions`` and the whole image collection."""

    image_set: str
    images: Sequence
    captions: list[str]  # (T,) unique texts
    positives: torch.Tensor  # (T, I) bool: caption t describes image i
    data: dict = field(default_factory=dict)

    def skip_reason(self) -> str | None:
        return None

    def score(self, evaluator) -> dict:
        return evaluator.retrieval(self)

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        from synclip.eval.plots import retrieval_plot

        return retrieval_plot(evaluator, name, self, out_dir)


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

    def skip_reason(self) -> str | None:
        if not self.query_index:
            return "no query image has a positive in the gallery (is limit too small?)"
        return None

    def score(self, evaluator) -> dict:
        return evaluator.image_retrieval(self)

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        from synclip.eval.plots import image_retrieval_plot

        return image_retrieval_plot(evaluator, name, self, out_dir)


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

    def skip_reason(self) -> str | None:
        return "fewer than 2 training images (is limit too small?)" if len(self.train_labels) < 2 else None

    def score(self, evaluator) -> dict:
        return evaluator.finetune(self) if self.protocol == "finetune" else evaluator.probe(self)

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        return None  # a fitted classifier: no picture


class TaskSkipped(Exception):
    """Raised while running a task that cannot run on this model (e.g. it has no classification head);
    ``evaluate`` records the message in ``result["skipped"]`` under the task's result name."""
