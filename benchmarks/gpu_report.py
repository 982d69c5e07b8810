"""Combine the parts of ``benchmarks/gpu_check.sh`` into one JSON file and one markdown table.

    python benchmarks/gpu_report.py --mfu mfu.json --ratio ratio.json --run RUN_DIR --json gpu_check.json

``--run`` is the folder of the short real training run; its ``metrics.jsonl`` gives pairs/s and
``data_wait_frac`` (the share of each logging window the loop waited for the loader; the first
window, with the workers starting, is left out of the medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def training_summary(run_dir: Path) -> dict:
    """Medians of pairs/s and data wait over the run's logging windows after the first."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "pairs_per_s" in r]
    if not rows:
        return {"error": f"no training rows in {run_dir / 'metrics.jsonl'}"}
    steady = rows[1:] or rows
    wait = [r["data_wait_frac"] for r in steady if "data_wait_frac" in r]
    return {
        "steps": rows[-1].get("step"),
        "windows": len(steady),
        "pairs_per_s": round(statistics.median(r["pairs_per_s"] for r in steady), 1),
        "data_wait_frac": round(statistics.median(wait), 4) if wait else None,
        "busy_frac": round(1 - statistics.median(wait), 4) if wait else None,
    }


def markdown(result: dict) -> str:
    lines = ["| part | what | value |", "|---|---|---|"]
    mfu = result.get("mfu") or {}
    head = f"{mfu.get('model')} b{mfu.get('batch')} {mfu.get('precision')} on {mfu.get('device')}"
    for mode, sides in (mfu.get("modes") or {}).items():
        if "error" in sides:
            lines.append(f"| {mode} | {head} | failed: {sides['error'][:120]} |")
            continue
        for side, n in sides.items():
            extra = f", MFU {n['mfu']:.1%}" if n.get("mfu") is not None else ""
            lines.append(
                f"| {mode} | {side} {head} | {n['samples_per_s']} samples/s, {n['step_s']} s/step{extra} |"
            )
        if {"open_clip", "synclip"} <= set(sides):
            ratio = sides["open_clip"]["step_s"] / sides["synclip"]["step_s"]
            lines.append(f"| {mode} | open_clip / synclip step time | {ratio:.3f} |")
    ratio = result.get("ratio") or {}
    for name, value in (ratio.get("ratio_to_clip") or {}).items():
        lines.append(f"| recipe ratio | `{name}` step / `clip` step ({ratio.get('model')}) | {value} |")
    train = result.get("training") or {}
    if "error" in train:
        lines.append(f"| training | webdataset shards | failed: {train['error']} |")
    elif train:
        lines.append(f"| training | pairs/s from shards ({train['steps']} steps) | {train['pairs_per_s']} |")
        lines.append(f"| training | loop waiting for data (share of wall time) | {train['data_wait_frac']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mfu", type=Path, default=None)
    parser.add_argument("--ratio", type=Path, default=None)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    def read(path):
        return json.loads(path.read_text()) if path and path.exists() else None

    result = {"mfu": read(args.mfu), "ratio": read(args.ratio)}
    if args.run:
        result["training"] = (
            training_summary(args.run)
            if (args.run / "metrics.jsonl").exists()
            else {"error": f"no {args.run / 'metrics.jsonl'}"}
        )
    args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
