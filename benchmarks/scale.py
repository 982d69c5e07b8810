"""Scale benchmarks: training throughput of 1 vs N processes, and the synclip/open_clip step ratio
with gradient checkpointing and with AMP.

1. ``processes``: ``synclip train clip`` under ``torchrun --nproc_per_node N`` on the emoji corpus with
   the same global batch, the machine's cores split evenly between the processes; pairs/s is the
   median of the logged windows after the first (warm-up).
2. ``ratio``: open_clip's model + ClipLoss vs synclip's ``clip`` recipe on one random batch (the A/B
   rounds of ``throughput.py``), for each (grad checkpointing, precision) setting.

    python benchmarks/scale.py --procs 1 2 --ratio-settings fp32 fp32+ckpt bf16 bf16+ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import open_clip
import torch

from synclip.data.emoji import build_emoji_corpus
from throughput import measure, open_clip_step_fn, synclip_step_fn


def processes_throughput(n: int, model: str, global_batch: int, steps: int, workers: int) -> dict:
    """pairs/s of a ``torchrun --nproc_per_node n`` run with ``global_batch`` pairs per step."""
    tsv = build_emoji_corpus() / "twemoji.tsv"
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
            "-m", "synclip.cli", "train", "clip",
            f"model.name={model}", f"data.sources={{pairs: {{kind: csv, path: {tsv}, caption_key: caption}}}}",
            f"data.workers={workers}", f"train.batch_size={global_batch // n}", "train.epochs=1",
            f"train.max_steps={steps}", "train.log_every=2", f"train.out_dir={out}",
            "train.progress=false", "eval.at_end=false", "train.checkpoint_every=100000",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // n))}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        rows = [json.loads(x) for x in next(Path(out).glob("*/metrics.jsonl")).read_text().splitlines()]
    rates = [r["pairs_per_s"] for r in rows[1:]]
    return {
        "processes": n,
        "threads_per_process": max(1, cores // n),
        "pairs_per_s": round(statistics.median(rates), 1),
    }


def step_ratio(model: str, batch: int, precision: str, ckpt: bool, rounds: int, device: torch.device) -> dict:
    """Median step time of open_clip and synclip (interleaved A/B rounds), as in throughput.py."""
    torch.manual_seed(0)
    ref = open_clip.create_model(model)
    size, ctx = ref.visual.image_size[0], ref.context_length
    del ref
    data = {
        "pairs": {
            "image": torch.randn(batch, 3, size, size, device=device),
            "text": torch.randint(1, 49407, (batch, ctx), device=device),
        }
    }
    sides = {
        "open_clip": open_clip_step_fn(model, data, device, grad_checkpointing=ckpt),
        "synclip": synclip_step_fn(model, data, device, grad_checkpointing=ckpt),
    }
    for step in sides.values():
        measure(step, precision, 2, device)
    times = {name: [] for name in sides}
    for r in range(rounds):
        for name in list(sides) if r % 2 == 0 else list(reversed(sides)):
            times[name] += measure(sides[name], precision, 3, device)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "precision": precision,
        "grad_checkpointing": ckpt,
        "open_clip_step_s": round(med["open_clip"], 4),
        "synclip_step_s": round(med["synclip"], 4),
        "ratio_open_clip_over_synclip": round(med["open_clip"] / med["synclip"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="micro-vit-32")
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12, help="training steps per process count")
    parser.add_argument("--workers", type=int, default=1, help="data loader workers per process")
    parser.add_argument("--procs", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--ratio-model", default="tiny-vit-48")
    parser.add_argument("--ratio-batch", type=int, default=64)
    parser.add_argument("--ratio-settings", nargs="*", default=["fp32", "fp32+ckpt", "bf16", "bf16+ckpt"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    result = {"device": args.device, "cpu_count": os.cpu_count(), "torch": torch.__version__}
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
    result["processes"] = [
        processes_throughput(n, args.model, args.global_batch, args.steps, args.workers) for n in args.procs
    ]
    device = torch.device(args.device)
    result["ratio"] = []
    for setting in args.ratio_settings:
        precision, _, extra = setting.partition("+")
        result["ratio"].append(
            step_ratio(args.ratio_model, args.ratio_batch, precision, extra == "ckpt", args.rounds, device)
        )
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
