"""Epochs that give every recipe the same training wall-clock on this machine, for ``synclip compare``.

An equal-wall-clock comparison (A-CLIP's and SLIP's way of charging a method for its extra views and
heads) needs each row's epochs fitted to one budget. This script measures each entry's real training
rate, data loading included: a short run of ``synclip.train.loop.train`` with the entry's own config
(the same ``--set`` / ``--set-for`` overrides ``synclip compare`` takes), the median of the loop's
logged ``pairs_per_s`` windows after the first (worker start-up). A recipe with objectives that switch
on late (``start_fraction``, e.g. ``siglip2``'s last 20%) is measured twice, before and with every
objective on, and its time per pair is the mix of the two by the start fraction. It prints each
entry's epochs for ``--minutes`` and the ``--set-for`` flags to paste into ``synclip compare``.

    python benchmarks/fit_epochs.py --minutes 2 clip slip aclip silc tips siglip siglip2 \
        --set model.name=micro-vit-32 train.lr=2e-3

The fit is only as good as the machine is quiet: run it, and the comparison, with nothing else on
the cores. Warm-up steps (``train.warmup_steps``) are scaled down for a row whose fitted run would
have fewer than ten times as many steps (our rule, so that short rows still spend most steps past
the warm-up).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

from synclip.compare import Entry
from synclip.config import load_config
from synclip.train.logging import read_metrics
from synclip.train.loop import train


def late_starts(cfg) -> dict[str, float]:
    """Objectives of ``cfg`` that start after step 0, with their start fractions."""
    starts = {}
    for name, options in (cfg.objectives or {}).items():
        fraction = float((options or {}).get("start_fraction", 0.0))
        if fraction > 0:
            starts[name] = fraction
    return starts


def train_rate(recipe: str, overrides: list[str], steps: int, log_every: int, workdir: Path) -> float:
    """Median logged training pairs/s of a ``steps``-step real run, leaving out the first window."""
    cfg = load_config(
        recipe,
        [
            *overrides,
            f"train.max_steps={steps}",
            f"train.log_every={log_every}",
            "train.warmup_steps=1",  # a short measuring run: the learning rate does not change the time
            "train.checkpoint_every=100000",
            "train.progress=false",
            "eval.at_end=false",
            f"train.out_dir={workdir}",
            "train.name=run",
        ],
    )
    windows = [row["pairs_per_s"] for row in read_metrics(train(cfg))][1:]
    if not windows:
        raise SystemExit(f"{recipe}: --steps {steps} / --log-every {log_every} logs fewer than two windows")
    return statistics.median(windows)


def fit(args) -> list[dict]:
    per_entry: dict[str, list[str]] = {}
    for label, *pairs in args.set_for or []:
        per_entry.setdefault(label, []).extend(pairs)
    rows = []
    for spec in args.entries:
        entry = Entry.parse(spec)
        overrides = [*args.set, *entry.overrides, *per_entry.get(entry.label, [])]
        cfg = load_config(entry.recipe, overrides)
        workdir = Path(tempfile.mkdtemp(prefix=f"synclip-fit-{entry.label}-"))
        rate = train_rate(entry.recipe, overrides, args.steps, args.log_every, workdir / "early")
        starts = late_starts(cfg)
        row = {"label": entry.label, "recipe": entry.recipe, "pairs_per_s": rate}
        if starts:  # the late objectives' share of the run is priced at the all-on rate
            on = [f"objectives.{name}.start_fraction=0" for name in starts]
            late = train_rate(entry.recipe, [*overrides, *on], args.steps, args.log_every, workdir / "late")
            start = min(starts.values())
            row.update(late_pairs_per_s=late, start_fraction=start)
            rate = 1 / (start / rate + (1 - start) / late)
        pairs = args.minutes * 60 * rate
        # the corpus size is the length of an epoch as the loop counts it: steps x batch
        steps_per_epoch = _steps_per_epoch(cfg)
        epochs = pairs / (steps_per_epoch * cfg.train.batch_size)
        steps = math.ceil(epochs * steps_per_epoch)
        warmup = cfg.train.warmup_steps
        row.update(
            mixed_pairs_per_s=rate,
            epochs=round(epochs, 3),
            steps=steps,
            warmup_steps=warmup if steps >= 10 * warmup else max(1, steps // 10),
        )
        rows.append(row)
    return rows


def _steps_per_epoch(cfg) -> int:
    from synclip.train.data import pretrainer_loaders
    from synclip.train.setup import build_pretrainer

    return pretrainer_loaders(cfg, build_pretrainer(cfg)).steps_per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("entries", nargs="+", help="recipes, or LABEL=RECIPE (as synclip compare)")
    parser.add_argument("--minutes", type=float, required=True, help="training wall-clock per row")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every entry (key=value)")
    parser.add_argument("--set-for", nargs="+", action="append", metavar=("LABEL", "KEY=VALUE"))
    parser.add_argument("--steps", type=int, default=16, help="steps of each measuring run")
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    rows = fit(args)
    print(json.dumps(rows, indent=2))
    flags = " ".join(
        f"--set-for {r['label']} train.epochs={r['epochs']} train.warmup_steps={r['warmup_steps']}"
        for r in rows
    )
    print(f"\nsynclip compare {' '.join(args.entries)} --set {' '.join(args.set)} {flags}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
