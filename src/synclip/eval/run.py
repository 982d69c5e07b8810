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
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from synclip.eval import classifier_head as ch
from synclip.eval import emoji_tasks as et
from synclip.eval import fashion_mnist as fm
from synclip.eval import labelled_tasks as lt
from synclip.eval import user_data as ud
from synclip.eval.evaluator import Evaluator, Task
from synclip.eval.plots import task_plots
from synclip.eval.task_data import Classification, ImageRetrieval, Probe, Retrieval, TaskSkipped
from synclip.eval.templates import resolve_templates


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
    "image_retrieval": lambda src: {
        "image_retrieval/twemoji_to_openmoji": et.image_retrieval_task(
            src.corpus, "twemoji", src.rows("twemoji"), "openmoji", src.rows("openmoji")
        )
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
USER_DATA_TASKS = ("image_folder", "csv")
EMOJI_TASKS = ["category", "subcategory", "head_noun", "retrieval", "cross_style", "image_retrieval"]


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

    A built-in task whose data cannot be found or built is skipped with its reason in
    ``result["skipped"]`` rather than failing an evaluation at the end of a training run; the user's
    own data (``image_folder``, ``csv``) that is missing is an error. Images of the user's data that
    cannot be read are skipped and counted in each task's ``data["bad_images"]``.
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
    for what, given in (("image folder (--image-folder)", image_folder), ("CSV (--csv)", csv)):
        if given is not None and not Path(given).exists():
            raise FileNotFoundError(f"{what} {given} does not exist; pass an existing path or leave it out")
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
            if name in USER_DATA_TASKS:  # the user's own data: missing is a mistake, not a skip
                raise
            warnings.warn(f"eval task {name!r} skipped: {err}", stacklevel=2)
            result["skipped"][name] = str(err)
            continue
        for key, task in task_data.items():
            if isinstance(task, Classification) and not task.index:
                result["skipped"][key] = "no labelled images (is limit too small?)"
                continue
            if isinstance(task, ImageRetrieval) and not task.query_index:
                result["skipped"][key] = "no query image has a positive in the gallery (is limit too small?)"
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
