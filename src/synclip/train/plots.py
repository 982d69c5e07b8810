"""Training curves: one panel per loss component and metric of ``metrics.jsonl``."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from synclip.train.logging import read_metrics  # noqa: E402

SKIP = {"step", "epoch", "bad_samples"}


def plot_training_curves(run_dir: Path) -> Path | None:
    """Write ``plots/training_curves.png``; returns its path, or None when nothing was logged."""
    rows = read_metrics(run_dir)
    if not rows:
        return None
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in SKIP]  # train, then val/...
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2, marker="." if "/" in key else None)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(run_dir) / "plots" / "training_curves.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
