"""Run logging: ``metrics.jsonl`` (one JSON object per logged step) and TensorBoard scalars.

Training scalars are logged under TensorBoard's ``train/`` and as plain keys in ``metrics.jsonl``;
evaluation results (periodic validation during training, ``val/``, and the end-of-run evaluation,
``eval/``) as ``<prefix>/<result name>/<metric>`` in both, e.g. ``val/retrieval/csv/text_to_image_R@1``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class MetricsLogger:
    """Appends scalars to ``metrics.jsonl`` and TensorBoard under ``run_dir/tensorboard``.

    On resume, lines past the resumed step are dropped first, so the file tells one consistent history.
    """

    def __init__(self, run_dir: Path, start_step: int = 0, append: bool = False):
        """``append``: keep every line already there (logging to a finished run)."""
        run_dir = Path(run_dir)
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists() and not append:
            kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= start_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self.tb = SummaryWriter(
            str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step and not append else None
        )

    def log(self, step: int, scalars: dict[str, float], prefix: str = "train") -> None:
        record = {"step": step, **{k: round(float(v), 6) for k, v in scalars.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in scalars.items():
            self.tb.add_scalar(f"{prefix}/{key}", float(value), step)

    def log_eval(self, step: int, result: dict, prefix: str = "val") -> dict[str, float]:
        """Log an :func:`synclip.eval.run.evaluate` result's metrics; returns the logged scalars."""
        scalars = eval_scalars(result, prefix)
        record = {"step": step, **{k: round(v, 6) for k, v in scalars.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in scalars.items():
            self.tb.add_scalar(key, value, step)
        self.tb.flush()
        return scalars

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of ``metrics.jsonl``; a line a killed run left half-written is dropped with a warning."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            print(
                f"warning: {path} line {number} is not a complete record (a killed run?); ignored",
                file=sys.stderr,
            )
    return records


def eval_scalars(result: dict, prefix: str) -> dict[str, float]:
    """``{"<prefix>/<result name>/<metric>": value}`` for every numeric metric of an eval result."""
    out = {}
    for name, entry in result.get("tasks", {}).items():
        for metric, value in entry.get("metrics", {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{prefix}/{name}/{metric}"] = float(value)
    return out


def log_eval_result(run_dir: Path, result: dict, prefix: str = "eval", step: int | None = None) -> None:
    """Append a finished run's evaluation to its ``metrics.jsonl`` and TensorBoard, at ``step``
    (default: the last logged step)."""
    if step is None:
        step = max((r.get("step", 0) for r in read_metrics(run_dir)), default=0)
    logger = MetricsLogger(run_dir, append=True)
    try:
        logger.log_eval(step, result, prefix)
    finally:
        logger.close()
