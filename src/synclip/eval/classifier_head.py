"""The ``classifier`` task: a trained classification head scored on the labelled evaluation sets.

The ``classify`` objective (MOFI, Wu et al. 2023, https://arxiv.org/abs/2306.07952; the cross-entropy
baseline of UniCL, Yang et al. 2022, https://arxiv.org/abs/2204.03610) learns a cosine classifier
over an entity vocabulary. When that vocabulary holds every class name of a labelled set (the
data set's own names, e.g. Fashion-MNIST's "trousers", "sneaker", not the zero-shot prompts' words),
the head classifies the set's images without prompts: its rows for those classes, in the set's label
order, give ``normalize(image) @ normalize(w_c).T / temperature``, the objective's own logits
restricted to the set's classes. That puts the result on the zero-shot task's footing: the same C
classes and chance levels, and the same images under the same cache key, so they are encoded once.

A set is skipped with a reason when the model has no head (no
:class:`~synclip.objectives.classify.ClassifierHead` among ``model.heads``, set by :func:`synclip.load`), when no head's vocabulary holds all its class names, or
when its data is not installed. The vocabulary is checked first, so a skipped set loads nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from synclip.eval.metrics import classification_chance, classification_metrics
from synclip.eval.task_data import Classification, TaskSkipped
from synclip.objectives.classify import ClassifierHead

NO_HEAD = (
    "the model has no classification head (no classify head in model.heads): train a recipe with a "
    "classify objective (classifier, mofi) and load it with synclip.load"
)


@dataclass
class HeadClassification:
    """A labelled set's images classified by a trained head, loaded only once a head covers the set."""

    dataset: str  # e.g. "fashion_mnist"
    class_names: list[str]  # (C,) the data set's own names, in label order, as the vocabulary spells them
    build: Callable[[], Classification]  # the set's zero-shot task: images, labels, cache key

    def load(self) -> Classification:
        try:
            return self.build()
        except (FileNotFoundError, ModuleNotFoundError) as err:
            raise TaskSkipped(str(err)) from err

    def skip_reason(self) -> str | None:
        return None  # known only once scored: whether a head covers the set, whether its data loads

    def score(self, evaluator) -> dict:
        """Raises TaskSkipped when the model has no head that knows every class of the set."""
        return head_result(self, model_heads(evaluator.model), evaluator.image_features)

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        return []  # listed in eval.json's plots, with no picture


def model_heads(model) -> dict[str, ClassifierHead]:
    """The model's trained classification heads (``vocabulary``, ``weight`` (K, D), ``temperature``),
    empty when it has none: the one place the evaluation reads them from the model."""
    heads = getattr(model, "heads", None) or {}  # models not from synclip.load (baselines) have none
    return {name: head for name, head in heads.items() if isinstance(head, ClassifierHead)}


def head_tasks(limit: int | None = None) -> dict[str, HeadClassification]:
    """``classifier/<set>`` for Fashion-MNIST (test split), MNIST-5k and scikit-learn's digits."""
    from synclip.data.sources.labelled import DIGIT_CLASSES, FASHION_MNIST_CLASSES
    from synclip.eval import fashion_mnist as fm
    from synclip.eval import labelled_tasks as lt

    return {
        "classifier/fashion_mnist": HeadClassification(
            "fashion_mnist", list(FASHION_MNIST_CLASSES), lambda: fm.fashion_mnist_task(limit)
        ),
        "classifier/mnist5k": HeadClassification(
            "mnist5k", list(DIGIT_CLASSES), lambda: lt.mnist5k_tasks(limit, probes=())["mnist5k"]
        ),
        "classifier/digits": HeadClassification(
            "digits", list(DIGIT_CLASSES), lambda: lt.digits_tasks(limit, probes=())["digits"]
        ),
    }


def choose_head(
    classifiers: dict[str, ClassifierHead], class_names: Sequence[str], dataset: str
) -> tuple[str, list[int]]:
    """(objective name, rows of its ``weight`` for ``class_names``) of the first head whose vocabulary
    holds every class name; raises :class:`TaskSkipped` naming the missing classes otherwise."""
    if not classifiers:
        raise TaskSkipped(NO_HEAD)
    lacking = {}
    for name, head in classifiers.items():
        row = {entity: i for i, entity in enumerate(head.vocabulary)}
        missing = [c for c in class_names if c not in row]
        if not missing:
            return name, [row[c] for c in class_names]
        lacking[name] = missing
    why = "; ".join(
        f"classifier {name!r} ({len(classifiers[name].vocabulary)} entities) lacks {missing}"
        for name, missing in lacking.items()
    )
    raise TaskSkipped(f"no classifier's vocabulary holds every {dataset} class name: {why}")


def head_logits(features: torch.Tensor, weight: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N, D) image features, (C, D) head rows -> (N, C) cosine logits / temperature."""
    weight = F.normalize(weight.float(), dim=-1)  # (C, D)
    return F.normalize(features.float(), dim=-1) @ weight.T / temperature  # (N, D) @ (D, C) -> (N, C)


def head_result(
    task: HeadClassification,
    classifiers: dict[str, ClassifierHead],
    image_features: Callable[[str, Sequence], torch.Tensor],
) -> dict:
    """Score ``task`` with the model's ``classifiers``; ``image_features(image_set, images)`` (the
    Evaluator's cache) gives the (I, D) features of the set's images."""
    name, rows = choose_head(classifiers, task.class_names, task.dataset)
    images = task.load()
    if not images.index:
        raise TaskSkipped("no labelled images (is limit too small?)")
    head = classifiers[name]
    features = image_features(images.image_set, images.images)[images.index]  # (N, D)
    logits = head_logits(features, head.weight[rows], head.temperature)  # (N, C)
    return {
        "kind": "classifier",
        "metrics": classification_metrics(logits, torch.tensor(images.labels)),
        "chance": classification_chance(len(task.class_names)),
        "templates": None,  # no prompts: the head's own class weights
        "head": {
            "objective": name,
            "vocabulary_size": len(head.vocabulary),
            "temperature": head.temperature,
        },
        "classes": list(task.class_names),
        "data": {
            **images.data,
            "majority_top1": max(Counter(images.labels).values()) / len(images.labels),
        },
    }
