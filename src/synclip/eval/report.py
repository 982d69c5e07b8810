"""Side-by-side reports of evaluated runs: mean and standard deviation over seeds, table and chart.

A *record* is one evaluated run: ``{"label", "seed", "train_seconds", "tasks": {name: {"metrics",
"chance"}}}`` (see ``synclip.compare``). Rows of the report are (task, metric) pairs, columns are
labels, so five recipes and a dozen metrics stay readable; the chance level is the last column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from synclip.io import atomic_write_text

# The metrics shown per task kind: zero-shot and probes by top-1, retrieval by Recall@1 and @5,
# image-to-image retrieval by Recall@1 and mAP,
# captioning by CIDEr and BLEU, generative zero-shot by top-1 beside the contrastive top-1.
HEADLINE = (
    "top1",
    "text_to_image_R@1",
    "text_to_image_R@5",
    "image_to_text_R@1",
    "image_to_text_R@5",
    "image_to_image_R@1",
    "mAP",
    "cider",
    "bleu",
    "contrastive_top1",
)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def summarise(records: list[dict], metrics: tuple[str, ...] = HEADLINE) -> dict:
    """``{"labels", "rows": [{"task", "metric", "chance", "values": {label: [..]}}], "train_seconds"}``."""
    labels = list(dict.fromkeys(r["label"] for r in records))
    rows: dict[tuple[str, str], dict] = {}
    for record in records:
        for task, entry in record["tasks"].items():
            for metric in metrics:
                value = entry["metrics"].get(metric)
                if value is None:
                    continue
                row = rows.setdefault(
                    (task, metric),
                    {"task": task, "metric": metric, "chance": entry["chance"].get(metric), "values": {}},
                )
                row["values"].setdefault(record["label"], []).append(value)
    seconds = {}
    for record in records:
        if record.get("train_seconds") is not None:
            seconds.setdefault(record["label"], []).append(record["train_seconds"])
    seeds = {label: sorted({r["seed"] for r in records if r["label"] == label}) for label in labels}
    return {"labels": labels, "seeds": seeds, "rows": list(rows.values()), "train_seconds": seconds}


def _cell(values: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "n/a"
    m, s = mean_std(values)
    return (
        f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}" if len(values) > 1 else f"{scale * m:.{digits}f}"
    )


def markdown_table(summary: dict) -> str:
    """Rows (task, metric) x columns (labels), values in % as mean ± std over seeds, then chance."""
    labels = summary["labels"]
    lines = [
        "| task | metric | " + " | ".join(f"`{label}`" for label in labels) + " | chance |",
        "|---|---|" + "---|" * (len(labels) + 1),
    ]
    for row in summary["rows"]:
        cells = [_cell(row["values"].get(label)) for label in labels]
        chance = "n/a" if row["chance"] is None else f"{100 * row['chance']:.2f}"
        lines.append(f"| {row['task']} | {row['metric']} | " + " | ".join(cells) + f" | {chance} |")
    if summary["train_seconds"]:
        cells = [_cell(summary["train_seconds"].get(label), scale=1 / 60) for label in labels]
        lines.append("| training | wall-clock (min) | " + " | ".join(cells) + " | |")
    n_seeds = sorted({len(s) for s in summary["seeds"].values()})
    lines.append("")
    lines.append(f"Values in %: mean ± standard deviation over {'/'.join(map(str, n_seeds))} seed(s).")
    return "\n".join(lines)


def bar_chart(summary: dict, path: Path, max_panels: int = 18) -> Path | None:
    """One panel per (task, metric), one bar per label with its standard deviation, chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"][:max_panels]
    if not rows:
        return None
    labels = summary["labels"]
    cols = min(3, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, rows):
        stats = [mean_std(row["values"][lb]) if lb in row["values"] else (0.0, 0.0) for lb in labels]
        ax.bar(range(len(labels)), [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], capsize=3)
        if row["chance"] is not None:
            ax.axhline(100 * row["chance"], color="k", linestyle="--", linewidth=1, label="chance")
        ax.set_title(f"{row['task']}\n{row['metric']}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("%")
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(records: list[dict], out: str | Path) -> dict[str, Path]:
    """Write ``results.json`` (every record and the summary), ``results.md`` and ``results.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(records)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
    atomic_write_text(paths["json"], json.dumps({"records": records, "summary": summary}, indent=2))
    atomic_write_text(paths["md"], markdown_table(summary) + "\n")
    bar_chart(summary, paths["png"])
    return paths
