"""Data loading against the step it feeds, per recipe and augmentation path, in one run.

For each recipe (its own sources and views) and each image augmentation path (``data.augment``:
``pil``, each sample augmented in a DataLoader worker; ``batched``, workers decode once and the
training device augments whole batches), three numbers:

- **loader pairs/s**: batches drawn from the training DataLoader with ``--workers`` worker processes
  and made ready for the model (``MultiSourceLoader.to_device``, which on the batched path includes
  the crops and colour steps on the device), nothing else running;
- **loader CPU ms/pair**: the same work in this process alone (no workers) on one thread, in CPU
  time: what a pair's data costs whatever else runs on the machine;
- **step pairs/s**: forward + backward + AdamW + post-step hooks on one fixed batch, no data loading
  (as ``recipe_ratio.py``; on the CPU from this process's CPU time on ``--step-threads`` threads, which
  other processes sharing the machine do not inflate), and its ratio to `clip`'s: the step-compute ratio;
- **train pairs/s**: a real short training run (``synclip.train.loop.train``), the median of the
  loop's logged ``pairs_per_s`` windows after the first (which holds worker start-up), and its
  wall-clock ratio to `clip` on the same path.

The issue's goals read off the table: every recipe's wall ratio within 1.2x of its step ratio, and
`clip`'s loader at least 2x faster than its step.

    python benchmarks/loader.py --model micro-vit-32 --batch 64 --workers 2
    python benchmarks/loader.py --recipes clip,slip --paths batched --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from recipe_ratio import measure, recipe_spec, step_fn
from synclip.config import load_config
from synclip.data.views.image_ssl import single_thread
from synclip.train.data import pretrainer_loaders
from synclip.train.logging import read_metrics
from synclip.train.loop import train
from synclip.train.setup import build_pretrainer

DEFAULT = ["clip", "slip", "slip_pd50", "declip", "silc"]
# multi-crop self-distillation with DINO heads of 64 prototypes (our choice, to keep the step short
# on a CPU: the data, 2 global + 8 local crops per sample, is what this benchmark is about)
LABELS = {
    "silc": (
        "silc",
        [
            "objectives.self_distill.prototypes=64",
            "objectives.self_distill.hidden_dim=32",
            "objectives.self_distill.bottleneck_dim=16",
        ],
        None,
    ),
}


def spec(label: str) -> tuple[str, list[str], str | None]:
    return LABELS.get(label) or recipe_spec(label)


PATHS = ("pil", "batched")


def _config(label: str, args, path: str, workdir: Path, extra: list[str] = ()):
    recipe, overrides, stage = spec(label)
    if stage:
        raise SystemExit(f"{label}: staged recipes are not measured here (use recipe_ratio.py per stage)")
    sized = [f"train.batch_size={args.batch}", f"model.name={args.model}", f"train.device={args.device}"]
    run = [f"data.workers={args.workers}", f"data.augment={path}", f"train.out_dir={workdir}", *extra]
    return load_config(recipe, [*sized, *overrides, *run])


def loader_rate(label: str, args, path: str, workdir: Path, device: torch.device) -> float:
    """Pairs/s of the recipe's training loader with ``args.workers`` workers, batches made ready on ``device``."""
    cfg = _config(label, args, path, workdir)
    data = pretrainer_loaders(cfg, build_pretrainer(cfg), pin_memory=device.type == "cuda")
    batches = data.epoch(0)
    for _ in range(args.warmup_batches):  # worker start-up and the first batches' latency
        data.to_device(next(batches), device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, pairs = time.perf_counter(), 0
    for _ in range(args.batches):
        batch = data.to_device(next(batches), device)
        pairs += batch[data.main]["size"]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return pairs / (time.perf_counter() - start)


def loader_cpu_cost(label: str, args, path: str, workdir: Path, device: torch.device) -> float:
    """CPU milliseconds per pair of the same loading done in this process on one thread (no workers)."""
    cfg = _config(label, args, path, workdir, ["data.workers=0"])
    data = pretrainer_loaders(cfg, build_pretrainer(cfg))
    batches = data.epoch(0)
    with single_thread():
        data.to_device(next(batches), device)  # warm-up
        start, pairs = time.process_time(), 0
        for _ in range(args.batches):
            pairs += data.to_device(next(batches), device)[data.main]["size"]
        return 1000 * (time.process_time() - start) / pairs


def step_rate(label: str, args, workdir: Path, device: torch.device) -> tuple[float, float]:
    """(pairs/s of the step alone, its time basis in seconds) on one fixed batch of the recipe."""
    extra = LABELS[label][1] if label in LABELS else []
    step = step_fn(args.model, label, args.batch, device, "fp32", workdir / f"step-{label}", extra)
    threads = torch.get_num_threads()
    if device.type == "cpu" and args.step_threads:
        torch.set_num_threads(args.step_threads)
    try:
        measure(step, 1, device)  # warm-up
        times = measure(step, args.step_repeats, device)
    finally:
        torch.set_num_threads(threads)
    seconds = statistics.median(cpu if device.type == "cpu" else wall for wall, cpu in times)
    return args.batch / seconds, seconds


def train_rate(label: str, args, path: str, workdir: Path) -> float:
    """Median logged pairs/s of a short real training run, leaving out the first window (start-up)."""
    extra = [
        f"train.max_steps={args.train_steps}",
        f"train.log_every={args.log_every}",
        "train.epochs=100",
        "train.warmup_steps=1",  # short run: no warm-up warning; the lr does not change the time
        "train.checkpoint_every=100000",
        "train.progress=false",
        "eval.at_end=false",
        f"train.name={label}-{path}",
    ]
    cfg = _config(label, args, path, workdir / "train", extra)
    run_dir = train(cfg)
    windows = [row["pairs_per_s"] for row in read_metrics(run_dir)][1:]
    return statistics.median(windows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="micro-vit-32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--recipes", default=",".join(DEFAULT), help="labels of recipe_ratio.py or recipe names"
    )
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--batches", type=int, default=6, help="timed loader batches")
    parser.add_argument("--warmup-batches", type=int, default=2)
    parser.add_argument("--step-repeats", type=int, default=3)
    parser.add_argument(
        "--step-threads",
        type=int,
        default=1,
        help="CPU threads for the step-compute measurement (0: torch's); on a loaded machine 2 threads' CPU "
        "time swings with the load (spin-waits), 1 thread's does not",
    )
    parser.add_argument("--train-steps", type=int, default=12)
    parser.add_argument("--log-every", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()

    device = torch.device(args.device)
    labels, paths = args.recipes.split(","), args.paths.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="synclip-loader-"))
    began = time.perf_counter()
    rows = []
    steps = {label: step_rate(label, args, workdir, device) for label in labels}
    # the first training run of a process measured several times slower than later ones: run one unmeasured
    train_rate(
        labels[0],
        argparse.Namespace(**{**vars(args), "train_steps": 2 * args.log_every}),
        paths[0],
        workdir / "warm-up",
    )
    for i, label in enumerate(labels):
        for path in paths if i % 2 == 0 else paths[::-1]:  # alternate the order so drift hits both paths
            rows.append(
                {
                    "recipe": label,
                    "path": path,
                    "loader_pairs_s": loader_rate(label, args, path, workdir / path, device),
                    "loader_cpu_ms_pair": loader_cpu_cost(label, args, path, workdir / path, device),
                    "step_pairs_s": steps[label][0],
                    "train_pairs_s": train_rate(label, args, path, workdir / path),
                }
            )
    rows.sort(key=lambda row: (paths.index(row["path"]), labels.index(row["recipe"])))
    for row in rows:
        clip = next((r for r in rows if r["recipe"] == "clip" and r["path"] == row["path"]), None)
        row["step_ratio"] = steps["clip"][0] / row["step_pairs_s"] if "clip" in steps else None
        row["wall_ratio"] = clip["train_pairs_s"] / row["train_pairs_s"] if clip else None
        row["loader_over_step"] = row["loader_pairs_s"] / row["step_pairs_s"]
    result = {
        "model": args.model,
        "batch": args.batch,
        "workers": args.workers,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "step_basis": f"process CPU time, {args.step_threads or 'all'} thread(s)"
        if device.type == "cpu"
        else "wall time",
        "seconds": round(time.perf_counter() - began, 1),
        "rows": [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()} for row in rows],
    }
    print(json.dumps(result, indent=2))
    print(
        "\n| recipe | path | loader pairs/s | loader CPU ms/pair | step pairs/s | loader / step "
        "| train pairs/s | step ratio | wall ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"  # no `clip` in --recipes: no ratio

    for r in result["rows"]:
        print(
            f"| `{r['recipe']}` | {r['path']} | {r['loader_pairs_s']:.0f} | {r['loader_cpu_ms_pair']:.2f} "
            f"| {r['step_pairs_s']:.0f} | {r['loader_over_step']:.2f} | {r['train_pairs_s']:.0f} "
            f"| {ratio(r['step_ratio'])} | {ratio(r['wall_ratio'])} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
