"""Run named evaluation tasks on a model; report each metric beside its chance level.

``evaluate`` returns (and ``write_eval_json`` stores as ``eval.json``)::

    {"tasks": {"head_noun/twemoji": {"kind": "zero_shot", "metrics": {...}, "chance": {...},
                                     "templates": {"set": "emoji", "templates": [...]},
                                     "classes": [...], "data": {"source": ..., "n": ...}}, ...},
     "skipped": {"fashion_mnist": "why"}, "seconds": {"head_noun": 1.2, ...}, "settings": {...}}

``classifier/...`` (kind "classifier") scores a trained classification head (``model.classifiers``) on
a labelled set, with ``head``: which objective's head, its vocabulary size and temperature.
Probe results (``linear_probe/...``, ``knn/...``) have ``kind`` "linear_probe" or "knn", the same
classification metrics and chance levels, and ``probe``: the protocol, the hyper-parameter chosen on
the validation split and the sweep behind it. ``finetune/...`` (kind "finetune") has ``finetune``:
its settings and per-epoch training loss and accuracy.

Each image collection is encoded once per call and shared by the tasks on it, and so are the text
features of identical caption lists and classifiers of identical (classes, templates).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from synclip.eval import classifier_head as ch
from synclip.eval import emoji_tasks as et
from synclip.eval import fashion_mnist as fm
from synclip.eval import labelled_tasks as lt
from synclip.eval import user_data as ud
from synclip.eval.features import encode_images, encode_texts
from synclip.eval.finetune import finetune
from synclip.eval.knn import knn_classify
from synclip.eval.linear_probe import linear_probe
from synclip.eval.metrics import (
    classification_chance,
    classification_metrics,
    retrieval_chance,
    retrieval_metrics,
)
from synclip.eval.plots import task_plots
from synclip.eval.task_data import Classification, Probe, Retrieval, TaskSkipped
from synclip.eval.templates import resolve_templates
from synclip.eval.zero_shot import build_classifier, zero_shot_logits


class Sources:
    """Where task data comes from: the emoji corpus (built on first use), the user's image folder and
    CSV (see :mod:`synclip.eval.user_data`), and ``limit`` images per set."""

    def __init__(
        self,
        corpus_dir: str | Path | None = None,
        limit: int | None = None,
        image_folder: str | Path | None = None,
        class_names: str | Path | None = None,
        csv: str | Path | None = None,
        csv_keys: tuple[str, str] = ("filepath", "caption"),
    ):
        self._corpus = Path(corpus_dir) if corpus_dir is not None else None
        self.limit = limit
        self._rows: dict[str, list[dict]] = {}
        self._image_folder, self.class_names, self._csv = image_folder, class_names, csv
        self.csv_keys = csv_keys

    @property
    def image_folder(self) -> str | Path:
        if self._image_folder is None:
            raise ValueError("task 'image_folder' needs an image folder (--image-folder DIR)")
        return self._image_folder

    @property
    def csv(self) -> str | Path:
        if self._csv is None:
            raise ValueError("task 'csv' needs a CSV of image-text pairs (--csv FILE)")
        return self._csv

    @property
    def built(self) -> Path | None:
        """The corpus folder if a task has used it (or it was given), else None."""
        return self._corpus

    @property
    def corpus(self) -> Path:
        if self._corpus is None:
            from synclip.data.emoji import build_emoji_corpus

            self._corpus = Path(build_emoji_corpus())
        return self._corpus

    def rows(self, style: str) -> list[dict]:
        if style not in self._rows:
            self._rows[style] = et.read_rows(self.corpus, style, self.limit)
        return self._rows[style]


Task = Classification | Retrieval | Probe | ch.HeadClassification


def _per_style(build: Callable[[Path, str, list[dict]], Classification | Retrieval], prefix: str):
    return lambda src: {f"{prefix}/{s}": build(src.corpus, s, src.rows(s)) for s in et.STYLES}


# Task name -> Sources -> {result name: task data}.
TASKS: dict[str, Callable[[Sources], dict[str, Task]]] = {
    "category": _per_style(lambda c, s, r: et.label_task(c, s, r, "category"), "category"),
    "subcategory": _per_style(lambda c, s, r: et.label_task(c, s, r, "subcategory"), "subcategory"),
    "head_noun": _per_style(et.head_noun_task, "head_noun"),
    "retrieval": lambda src: {
        "retrieval/twemoji": et.retrieval_task(src.corpus, "twemoji", src.rows("twemoji"))
    },
    "cross_style": lambda src: {
        "retrieval/openmoji": et.retrieval_task(src.corpus, "openmoji", src.rows("openmoji"))
    },
    "fashion_mnist": lambda src: {"fashion_mnist": fm.fashion_mnist_task(src.limit)},
    "classifier": lambda src: ch.head_tasks(src.limit),
    "linear_probe": lambda src: {"linear_probe/fashion_mnist": fm.probe_task("lbfgs", src.limit)},
    "knn": lambda src: {"knn/fashion_mnist": fm.probe_task("knn", src.limit)},
    "finetune": lambda src: {
        "finetune/fashion_mnist": fm.probe_task("finetune", src.limit, n_train=fm.N_FINETUNE)
    },
    "mnist5k": lambda src: lt.mnist5k_tasks(src.limit),
    "digits": lambda src: lt.digits_tasks(src.limit),
    "image_folder": lambda src: ud.image_folder_tasks(src.image_folder, src.class_names, limit=src.limit),
    "csv": lambda src: ud.csv_task(src.csv, *src.csv_keys, limit=src.limit),
}
EMOJI_TASKS = ["category", "subcategory", "head_noun", "retrieval", "cross_style"]


class Evaluator:
    """A model with caches: image features per image set, text features per text list, classifiers.

    With ``feature_cache`` (a folder that belongs to one checkpoint), image features are also kept on
    disk, one file per (image set, number of images, preprocessing), so evaluating the same checkpoint
    again, with other tasks or templates, encodes nothing twice.
    """

    def __init__(
        self,
        model,
        preprocess,
        tokenizer,
        device="cpu",
        batch_size: int = 256,
        feature_cache: str | Path | None = None,
    ):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.device, self.batch_size = device, batch_size
        self.feature_cache = Path(feature_cache) if feature_cache is not None else None
        self._images: dict[str, torch.Tensor] = {}
        self._texts: dict[tuple[str, ...], torch.Tensor] = {}
        self._classifiers: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}

    def image_features(self, image_set: str, images: Sequence) -> torch.Tensor:
        if image_set not in self._images:  # (I, D)
            path = self._cache_path(image_set, len(images))
            if path is not None and path.is_file():
                self._images[image_set] = torch.load(path, weights_only=True)
            else:
                features = encode_images(self.model, images, self.preprocess, self.device, self.batch_size)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    torch.save(features, tmp)
                    os.replace(tmp, path)
                self._images[image_set] = features
        return self._images[image_set]

    def _cache_path(self, image_set: str, n: int) -> Path | None:
        if self.feature_cache is None:
            return None
        key = hashlib.sha256(f"{image_set}|{n}|{self.preprocess!r}".encode()).hexdigest()[:24]
        return self.feature_cache / f"{key}.pt"

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        key = tuple(texts)
        if key not in self._texts:  # (T, D)
            self._texts[key] = encode_texts(self.model, self.tokenizer, key, self.device, self.batch_size)
        return self._texts[key]

    def classifier(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        key = (tuple(class_names), tuple(templates))
        if key not in self._classifiers:  # (D, C)
            self._classifiers[key] = build_classifier(
                self.model, self.tokenizer, class_names, templates, self.device, self.batch_size
            )
        return self._classifiers[key]

    def zero_shot_logits(self, task: Classification) -> torch.Tensor:
        """(N, C) prompt-ensemble logits of the task's images."""
        features = self.image_features(task.image_set, task.images)[task.index]  # (N, D)
        return zero_shot_logits(
            features, self.classifier(task.class_names, resolve_templates(task.templates)[1])
        )

    def retrieval_scores(self, task: Retrieval) -> torch.Tensor:
        """(T, I) cosine similarity of every caption to every image."""
        images = self.image_features(task.image_set, task.images)  # (I, D)
        return self.text_features(task.captions) @ images.T  # (T, I)

    def zero_shot(self, task: Classification) -> dict:
        template_set, templates = resolve_templates(task.templates)
        logits = self.zero_shot_logits(task)  # (N, C)
        return {
            "kind": "zero_shot",
            "metrics": classification_metrics(logits, torch.tensor(task.labels)),
            "chance": classification_chance(len(task.class_names)),
            "templates": {"set": template_set, "templates": templates},
            "classes": list(task.class_names),
            # top-1 of always answering the most frequent class: read top-1 on imbalanced tasks against it
            "data": {**task.data, "majority_top1": max(Counter(task.labels).values()) / len(task.labels)},
        }

    def retrieval(self, task: Retrieval) -> dict:
        return {
            "kind": "retrieval",
            "metrics": retrieval_metrics(self.retrieval_scores(task), task.positives),
            "chance": retrieval_chance(task.positives),
            "templates": None,  # captions are used as written
            "data": task.data,
        }

    def probe(self, task: Probe) -> dict:
        train = self.image_features(task.train_set, task.train_images)  # (N_train, D)
        test = self.image_features(task.test_set, task.test_images)  # (N_test, D)
        if task.train_index is not None:
            train = train[task.train_index]
        if task.test_index is not None:
            test = test[task.test_index]
        c = len(task.class_names)
        if task.protocol == "knn":
            out = knn_classify(train, task.train_labels, test, task.test_labels, c, **task.options)
        else:
            out = linear_probe(
                train, task.train_labels, test, task.test_labels, c, protocol=task.protocol, **task.options
            )
        return {
            "kind": "knn" if task.protocol == "knn" else "linear_probe",
            "metrics": out["metrics"],
            "chance": classification_chance(c),
            "templates": None,  # no prompts: a classifier fitted on image features
            "probe": {"chosen": out["chosen"], "settings": out["settings"], "sweep": out.get("sweep")},
            "classes": list(task.class_names),
            "data": {
                **task.data,
                "majority_top1": max(Counter(task.test_labels).values()) / len(task.test_labels),
            },
        }

    def finetune(self, task: Probe) -> dict:
        """End-to-end fine-tuning of a copy of the image tower with a linear head (synclip.eval.finetune)."""
        c = len(task.class_names)
        out = finetune(
            self.model,
            self.preprocess,
            task.train_images,
            task.train_labels,
            task.test_images,
            task.test_labels,
            c,
            device=self.device,
            **task.options,
        )
        return {
            "kind": "finetune",
            "metrics": out["metrics"],
            "chance": classification_chance(c),
            "templates": None,
            "finetune": {"settings": out["settings"], "history": out["history"]},
            "classes": list(task.class_names),
            "data": {
                **task.data,
                "majority_top1": max(Counter(task.test_labels).values()) / len(task.test_labels),
            },
        }

    def classifier_head(self, task: ch.HeadClassification) -> dict:
        """The model's trained classification head on a labelled set (:mod:`synclip.eval.classifier_head`);
        raises TaskSkipped when the model has no head that knows every class of the set."""
        return ch.head_result(task, getattr(self.model, "classifiers", None) or {}, self.image_features)

    def run(self, task: Task) -> dict:
        if isinstance(task, ch.HeadClassification):
            return self.classifier_head(task)
        if isinstance(task, Probe):
            return self.finetune(task) if task.protocol == "finetune" else self.probe(task)
        return self.zero_shot(task) if isinstance(task, Classification) else self.retrieval(task)


def default_tasks() -> tuple[list[str], dict[str, str]]:
    """(tasks to run, {task: why skipped}): the emoji tasks, ``classifier`` (a trained classification
    head, skipped per set with its reason when the model has none that knows the set's classes), plus
    Fashion-MNIST zero-shot when installed.

    The ``linear_probe`` and ``knn`` tasks are not defaults: they encode 10,000 more (training)
    images, which would double the time ``synclip eval`` takes on a CPU. Name them with ``--tasks``;
    so too ``finetune`` (end-to-end, much slower), ``mnist5k`` and ``digits`` (zero-shot and a linear
    probe each), ``image_folder`` and ``csv``.
    """
    reason = fm.available()
    if reason is None:
        return [*EMOJI_TASKS, "fashion_mnist", "classifier"], {}
    return [*EMOJI_TASKS, "classifier"], {"fashion_mnist": reason}


def evaluate(
    model,
    preprocess,
    tokenizer,
    tasks: list[str] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    corpus_dir: str | Path | None = None,
    limit: int | None = None,
    templates: str | None = None,
    image_folder: str | Path | None = None,
    class_names: str | Path | None = None,
    csv: str | Path | None = None,
    csv_keys: tuple[str, str] = ("filepath", "caption"),
    plots_dir: str | Path | None = None,
    feature_cache: str | Path | None = None,
) -> dict:
    """Run ``tasks`` (names in :data:`TASKS`; default: :func:`default_tasks`) on ``model``.

    ``model`` must already be on ``device``; inputs are moved there batch by batch and features come
    back to the CPU. ``limit`` caps every image set (emoji styles, Fashion-MNIST, the digit sets, the
    user's folder and CSV) at that many images, spread evenly over it. ``templates`` (a set name or a file, see
    :func:`synclip.eval.templates.resolve_templates`) replaces every zero-shot task's own set.

    ``image_folder`` (with an optional ``class_names`` file) and ``csv`` (with its image and caption
    columns ``csv_keys``) add the tasks ``image_folder`` and ``csv`` (:mod:`synclip.eval.user_data`);
    with no ``tasks`` given, only those run. With ``plots_dir``, a confusion matrix per zero-shot task
    and a retrieval grid per retrieval task are drawn there (:mod:`synclip.eval.plots`); their paths
    are listed in ``result["plots"]``. ``feature_cache`` keeps image features on disk (see
    :class:`Evaluator`); it must be a folder of this model's alone.

    A task whose data cannot be found or built is skipped with its reason in ``result["skipped"]``
    rather than failing an evaluation at the end of a training run.
    """
    own = [name for name, given in (("image_folder", image_folder), ("csv", csv)) if given is not None]
    if tasks is None and own:
        names, skipped = own, {}
    elif tasks is None:
        names, skipped = default_tasks()
    else:
        names, skipped = list(tasks) + [name for name in own if name not in tasks], {}
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; known: {', '.join(TASKS)}")
    if templates is not None:
        resolve_templates(templates)  # a bad name or file fails before any image is encoded
    if class_names is not None and image_folder is None:
        raise ValueError("class names (--class-names) name the classes of an image folder (--image-folder)")
    sources = Sources(corpus_dir, limit, image_folder, class_names, csv, csv_keys)
    evaluator = Evaluator(model, preprocess, tokenizer, device, batch_size, feature_cache)
    result: dict = {"tasks": {}, "skipped": skipped, "seconds": {}}
    if plots_dir is not None:
        result["plots"] = {}
    for name in names:
        start = time.perf_counter()
        try:
            task_data = TASKS[name](sources)
        except (FileNotFoundError, ModuleNotFoundError) as err:
            warnings.warn(f"eval task {name!r} skipped: {err}", stacklevel=2)
            result["skipped"][name] = str(err)
            continue
        for key, task in task_data.items():
            if isinstance(task, Classification) and not task.index:
                result["skipped"][key] = "no labelled images (is limit too small?)"
                continue
            if isinstance(task, Classification) and templates is not None:
                task = dataclasses.replace(task, templates=templates)
            if isinstance(task, Probe) and len(task.train_labels) < 2:
                result["skipped"][key] = "fewer than 2 training images (is limit too small?)"
                continue
            try:
                result["tasks"][key] = evaluator.run(task)
            except TaskSkipped as err:  # the model cannot do this task (e.g. no classification head)
                result["skipped"][key] = str(err)
                continue
            if plots_dir is not None and not isinstance(task, Probe):
                result["plots"][key] = [str(p) for p in task_plots(evaluator, key, task, plots_dir)]
        result["seconds"][name] = round(time.perf_counter() - start, 3)
    result["settings"] = {
        "device": str(device),
        "batch_size": batch_size,
        "limit": limit,
        "templates": templates,
        "image_folder": None if image_folder is None else str(image_folder),
        "class_names": None if class_names is None else str(class_names),
        "csv": None if csv is None else str(csv),
        "corpus_dir": str(sources.built) if sources.built is not None else None,
    }
    return result


def write_eval_json(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def format_table(result: dict, tasks: Sequence[str] | None = None) -> str:
    """Markdown table ``task | metric | value (%) | chance (%)``; ``tasks`` selects result names."""
    lines = ["| task | metric | value (%) | chance (%) |", "|---|---|---|---|"]
    for name, entry in result["tasks"].items():
        if tasks is not None and name not in tasks:
            continue
        for metric, value in entry["metrics"].items():
            if value is not None:
                lines.append(f"| {name} | {metric} | {_pct(value)} | {_pct(entry['chance'].get(metric))} |")
    for name, reason in result.get("skipped", {}).items():
        if tasks is None or name in tasks:
            lines.append(f"| {name} | skipped: {reason} | | |")
    return "\n".join(lines)
