"""``synclip compare``: train several recipes on equal terms, evaluate them all, report side by side.

Every entry trains with the same model, data, epochs and batch unless its own overrides say
otherwise (``--set-for``), for each seed, and is evaluated on the same tasks. A finished
(entry, seed), one whose ``eval.json`` exists, is not trained again, so an interrupted comparison
resumes where it stopped; an unfinished one resumes from its last checkpoint. Rows are evaluated on
the built-in tasks or on the data ``synclip eval`` takes (``eval_options``: your image folder, your
CSV, templates), checked before the first row trains. A finished run asked
for other tasks, data or another ``limit`` is evaluated again, not retrained, and keeps its training
wall-clock; one whose training overrides differ from the row's is an error, never reused under the
row's label. Existing checkpoints can be compared as they are (``--checkpoints``). The report folder
gets ``results.json``, ``results.md`` (mean and standard deviation over seeds) and ``results.png``
(a bar chart).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from synclip.eval.report import write_report
from synclip.io import atomic_write_text


@dataclass
class Entry:
    """One row of a comparison: a label, a recipe, and overrides applied on top of the shared ones."""

    label: str
    recipe: str
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str) -> Entry:
        """``RECIPE`` or ``LABEL=RECIPE`` (the label names the row, e.g. ``slip_pd50=slip``)."""
        label, _, recipe = spec.partition("=")
        return cls(label, recipe or label)


def _plain(value):
    """An eval option as JSON keeps it: a tuple as a list, a mapping (``hf_options``) as is, else text."""
    if isinstance(value, tuple):
        return list(value)
    return dict(value) if isinstance(value, dict) else str(value)


def _asked(tasks: list[str] | None, limit: int | None, eval_options: dict) -> dict:
    """What a run was evaluated on, as its record keeps it (data options only when given)."""
    data = {k: _plain(v) for k, v in eval_options.items()}
    return {"tasks": tasks, "limit": limit, **({"data": data} if data else {})}


def run_entry(
    entry: Entry,
    seed: int,
    shared: list[str],
    runs_dir: Path,
    tasks: list[str] | None,
    limit: int | None,
    eval_options: dict | None = None,
) -> dict:
    """Train (or resume, or reuse) one (entry, seed) and evaluate it; returns its record."""
    from synclip.config import load_config
    from synclip.evaluate import evaluate_checkpoint
    from synclip.train.loop import train

    name = f"{entry.label}-s{seed}"
    run_dir = runs_dir / name
    eval_path = run_dir / "eval.json"
    record_path = run_dir / "compare.json"
    eval_options = eval_options or {}
    asked = _asked(tasks, limit, eval_options)
    training = [
        *shared,
        *entry.overrides,
        f"train.seed={seed}",
        f"train.out_dir={runs_dir}",
        f"train.name={name}",
        "train.resume=auto",
        "eval.at_end=false",
    ]
    if eval_path.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        _check_same_training(record, training, run_dir)
        if record.get("eval") == asked:
            return record
        train_seconds = record["train_seconds"]  # trained before: evaluate again, do not retrain
        overrides = record["overrides"]
    else:
        # periodic validation (eval.every_steps) of a row scores the same data as the comparison
        overrides = [*training, *(f"eval.{k}={json.dumps(_plain(v))}" for k, v in eval_options.items())]
        cfg = load_config(entry.recipe, overrides)
        start = time.perf_counter()
        train(cfg)
        train_seconds = round(time.perf_counter() - start, 1)
    result = evaluate_checkpoint(run_dir / "checkpoint.pt", tasks=tasks, limit=limit, **eval_options)
    result = result["result"]
    record = {
        "label": entry.label,
        "recipe": entry.recipe,
        "seed": seed,
        "overrides": overrides,
        "train_seconds": train_seconds,
        "run_dir": str(run_dir),
        "eval": asked,
        "tasks": {k: {"metrics": v["metrics"], "chance": v["chance"]} for k, v in result["tasks"].items()},
    }
    atomic_write_text(record_path, json.dumps(record, indent=2))
    return record


def _check_same_training(record: dict, training: list[str], run_dir: Path) -> None:
    """A finished run is reused only for the training it had: other overrides would mislabel its row."""

    def moved(overrides):  # a report folder may move: where its runs lie is no part of their training
        return [o for o in overrides if not o.startswith("train.out_dir=")]

    kept = moved(record["overrides"][: len(training)])  # the eval data options follow the training ones
    training = moved(training)
    if kept != training:
        was, now = set(kept) - set(training), set(training) - set(kept)
        raise ValueError(
            f"{run_dir} finished with other training overrides (it had {sorted(was) or 'the same set'}, this "
            f"comparison asks {sorted(now) or 'the same set in another order'}); give the row another "
            "label or the comparison another --out, or delete that run to train it again"
        )


def evaluate_existing(
    checkpoint: Path | str,
    tasks: list[str] | None,
    limit: int | None,
    compare_out: Path | None = None,
    eval_options: dict | None = None,
) -> dict:
    """A record for a checkpoint trained elsewhere (its folder name is the label, seed 0), or for
    published weights ``open_clip:<arch>:<tag or file>`` (labelled ``<arch>:<tag or file name>``)."""
    from synclip.evaluate import evaluate_checkpoint
    from synclip.models.published import is_published, parse

    if is_published(str(checkpoint)):
        arch, pretrained = parse(str(checkpoint))
        label, run_dir = f"{arch}:{Path(pretrained).name}", None
        out = (
            Path(compare_out) / "published" / f"{arch}-{Path(pretrained).name}.json" if compare_out else None
        )
    else:
        checkpoint = Path(checkpoint)
        label, run_dir, out = checkpoint.parent.name, str(checkpoint.parent), None
    result = evaluate_checkpoint(checkpoint, tasks=tasks, limit=limit, out=out, **(eval_options or {}))[
        "result"
    ]
    return {
        "label": label,
        "recipe": result["checkpoint"].get("recipe"),
        "seed": 0,
        "train_seconds": None,
        "run_dir": run_dir,
        "tasks": {k: {"metrics": v["metrics"], "chance": v["chance"]} for k, v in result["tasks"].items()},
    }


def compare(
    entries: list[Entry],
    out: str | Path,
    seeds: int = 1,
    shared: list[str] | None = None,
    tasks: list[str] | None = None,
    limit: int | None = None,
    checkpoints: list[str | Path] = (),
    eval_options: dict | None = None,
) -> dict:
    """Run every (entry, seed), then write the report; returns ``{"records", "paths"}``.

    ``eval_options`` go to :func:`synclip.eval.run.evaluate` (``image_folder``, ``class_names``,
    ``csv``, ``csv_keys``, ``templates``); the request is checked before anything trains.
    """
    from synclip.eval.run import check_request

    out = Path(out)
    runs_dir = out / "runs"
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique, got {labels}; name rows with LABEL=RECIPE")
    eval_options = dict(eval_options or {})
    check_request(tasks, **eval_options)  # a mistake in the evaluation data fails before any row trains
    records = []
    total = len(entries) * seeds
    for i, (entry, seed) in enumerate((e, s) for e in entries for s in range(seeds)):
        print(f"== compare {i + 1}/{total}: {entry.label} seed {seed}", flush=True)
        records.append(run_entry(entry, seed, list(shared or []), runs_dir, tasks, limit, eval_options))
    for checkpoint in checkpoints:
        print(f"== compare: evaluating {checkpoint}", flush=True)
        records.append(evaluate_existing(checkpoint, tasks, limit, out, eval_options))
    if not records:
        raise ValueError("nothing to compare: name recipes or pass --checkpoints")
    paths = write_report(records, out)
    return {"records": records, "paths": paths}
