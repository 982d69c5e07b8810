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

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

import synclip.eval.tasks  # noqa: F401  (registers every task in EVAL_TASKS)
from synclip.data.templates import resolve_templates
from synclip.eval.evaluator import Evaluator
from synclip.eval.task import EvalInputs
from synclip.eval.task_data import TaskSkipped
from synclip.io import atomic_write_text
from synclip.registry import EVAL_TASKS

# What runs when no task is named, in this order (eval.json and the table keep it); each is left
# out with its reason when its data is not installed (EvalTask.unavailable).
DEFAULT_TASKS = [
    "category", "subcategory", "head_noun", "retrieval", "cross_style", "image_retrieval",
    "fashion_mnist", "classifier", "captioning", "generative_zero_shot",
]  # fmt: skip


def default_tasks() -> tuple[list[str], dict[str, str]]:
    """(tasks to run, {task: why skipped}): the emoji tasks, ``classifier`` (a trained classification
    head, skipped per set with its reason when the model has none that knows the set's classes), plus
    Fashion-MNIST zero-shot when installed.

    The ``linear_probe`` and ``knn`` tasks are not defaults: they encode 10,000 more (training)
    images, which would double the time ``synclip eval`` takes on a CPU. Name them with ``--tasks``;
    so too ``finetune`` (end-to-end, much slower), ``mnist5k`` and ``digits`` (zero-shot and a linear
    probe each), ``image_folder`` and ``csv``.
    """
    names, skipped = [], {}
    for name in DEFAULT_TASKS:
        reason = EVAL_TASKS.get(name)().unavailable()
        if reason is None:
            names.append(name)
        else:
            skipped[name] = reason
    return names, skipped


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
    csv_keys: tuple = ("filepath", "title"),
    plots_dir: str | Path | None = None,
    feature_cache: str | Path | None = None,
    benchmark: str | None = None,
    data_root: str | Path | None = None,
    hf_dataset: str | Path | None = None,
    hf_options: dict | None = None,
) -> dict:
    """Run ``tasks`` (names in :data:`synclip.registry.EVAL_TASKS`; default: :func:`default_tasks`) on ``model``.

    ``model`` must already be on ``device``; inputs are moved there batch by batch and features come
    back to the CPU. ``limit`` caps every image set (emoji styles, Fashion-MNIST, the digit sets, the
    user's folder and CSV) at that many images, spread evenly over it. ``templates`` (a set name or a file, see
    :func:`synclip.data.templates.resolve_templates`) replaces every zero-shot task's own set.

    ``image_folder`` (with an optional ``class_names`` file), ``csv`` (with its image and caption
    columns ``csv_keys``: (image, caption[, separator]), open_clip's defaults) and ``hf_dataset`` (a
    local Hugging Face dataset folder, with ``hf_options``: the ``hf_dataset`` source's options such as
    ``split``, ``format``, ``caption_key``, ``label_key``) add the tasks ``image_folder``, ``csv`` and
    ``hf_dataset`` (:mod:`synclip.eval.user_data`);
    with no ``tasks`` given, only those run. With ``plots_dir``, a confusion matrix per zero-shot task
    and a retrieval grid per retrieval task are drawn there (:mod:`synclip.eval.plots`); their paths
    are listed in ``result["plots"]``. ``feature_cache`` keeps image features on disk (see
    :class:`Evaluator`); it must be a folder of this model's alone.

    A built-in task whose data cannot be found or built is skipped with its reason in
    ``result["skipped"]`` rather than failing an evaluation at the end of a training run; the user's
    own data (``image_folder``, ``csv``) that is missing is an error. Images of the user's data that
    cannot be read are skipped and counted in each task's ``data["bad_images"]``.
    """
    names, skipped = check_request(
        tasks,
        templates,
        image_folder,
        class_names,
        csv,
        csv_keys,
        benchmark,
        data_root,
        hf_dataset,
        hf_options,
    )
    inputs = EvalInputs(
        corpus_dir,
        limit,
        image_folder,
        class_names,
        csv,
        csv_keys,
        benchmark,
        data_root,
        hf_dataset,
        hf_options,
    )
    evaluator = Evaluator(model, preprocess, tokenizer, device, batch_size, feature_cache, templates)
    result: dict = {"tasks": {}, "skipped": skipped, "seconds": {}}
    if plots_dir is not None:
        result["plots"] = {}
    for name in names:
        start = time.perf_counter()
        try:
            out = EVAL_TASKS.get(name)().run(evaluator, inputs, plots_dir)
        except TaskSkipped as err:  # its data cannot be found or built
            warnings.warn(f"eval task {name!r} skipped: {err}", stacklevel=2)
            result["skipped"][name] = str(err)
            continue
        result["tasks"].update(out.tasks)
        result["skipped"].update(out.skipped)
        if plots_dir is not None:
            result["plots"].update(out.plots)
        result["seconds"][name] = round(time.perf_counter() - start, 3)
    result["settings"] = {
        "device": str(device),
        "batch_size": batch_size,
        "limit": limit,
        "templates": templates,
        "image_folder": None if image_folder is None else str(image_folder),
        "class_names": None if class_names is None else str(class_names),
        "csv": None if csv is None else str(csv),
        "benchmark": benchmark,
        "data_root": None if data_root is None else str(data_root),
        "hf_dataset": None if hf_dataset is None else str(hf_dataset),
        "hf_options": hf_options,
        "corpus_dir": str(inputs.built) if inputs.built is not None else None,
    }
    return result


def check_request(
    tasks: list[str] | None = None,
    templates: str | None = None,
    image_folder: str | Path | None = None,
    class_names: str | Path | None = None,
    csv: str | Path | None = None,
    csv_keys: tuple = ("filepath", "title"),
    benchmark: str | None = None,
    data_root: str | Path | None = None,
    hf_dataset: str | Path | None = None,
    hf_options: dict | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(task names to run, {task: why skipped}) for an :func:`evaluate` call; raises on a mistake in
    the request without encoding an image: an unknown task, a bad template set, a task on the user's
    data without that data, a path that does not exist, CSV columns the file lacks.

    ``synclip compare`` and ``synclip train`` call it before the first step, so a mistake in the
    evaluation data fails at once rather than after a model has trained.
    """
    given = {"image_folder": image_folder, "csv": csv, "benchmark": benchmark, "hf_dataset": hf_dataset}
    own = [name for name, path in given.items() if path is not None]
    if tasks is None and own:
        names, skipped = own, {}
    elif tasks is None:
        names, skipped = default_tasks()
    else:
        names, skipped = list(tasks) + [name for name in own if name not in tasks], {}
    unknown = [name for name in names if name not in EVAL_TASKS]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; known: {', '.join(EVAL_TASKS.names())}")
    if templates is not None:
        resolve_templates(templates)  # a bad name or file fails before any image is encoded
    if class_names is not None and image_folder is None:
        raise ValueError("class names (--class-names) name the classes of an image folder (--image-folder)")
    flags = {
        "image_folder": "--image-folder DIR",
        "csv": "--csv FILE",
        "benchmark": "--benchmark NAME",
        "hf_dataset": "--hf-dataset DIR",
    }
    for name in names:
        needs = EVAL_TASKS.get(name).needs
        if needs is not None and given.get(needs) is None:
            raise ValueError(f"eval task {name!r} needs {flags.get(needs, needs)}")
    if hf_options and hf_dataset is None:
        raise ValueError(
            "--hf-* options (eval.hf_options) describe a Hugging Face dataset: pass --hf-dataset DIR"
        )
    for what, path in (
        ("image folder (--image-folder)", image_folder),
        ("CSV (--csv)", csv),
        ("Hugging Face dataset (--hf-dataset)", hf_dataset),
    ):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{what} {path} does not exist; pass an existing path or leave it out")
    if class_names is not None and not Path(class_names).is_file():
        raise FileNotFoundError(f"class names file (--class-names) {class_names} does not exist")
    if (benchmark is None) != (data_root is None):
        raise ValueError(
            "a benchmark needs both its name and its local copy: --benchmark NAME --data-root DIR"
        )
    if data_root is not None and not Path(data_root).exists():
        raise FileNotFoundError(f"benchmark data root (--data-root) {data_root} does not exist")
    if csv is not None:
        from synclip.data.sources import CsvImageText

        sep = csv_keys[2] if len(csv_keys) > 2 else "tab"  # (image, caption[, separator])
        CsvImageText(csv, img_key=csv_keys[0], caption_key=csv_keys[1], sep=sep)  # names the missing column
    if hf_dataset is not None:  # the datasets package, the split and the columns, read as a stream
        from synclip.data.sources.hf_dataset import open_for_eval

        open_for_eval(hf_dataset, hf_options, streaming=True)
    return names, skipped


def write_eval_json(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON through the one atomic writer (:func:`synclip.io.atomic_write_text`)."""
    return atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")


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
