"""Run logging: ``metrics.jsonl`` (one JSON object per logged step) and TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class MetricsLogger:
    """Appends scalars to ``metrics.jsonl`` and TensorBoard under ``run_dir/tensorboard``.

    On resume, lines past the resumed step are dropped first, so the file tells one consistent history.
    """

    def __init__(self, run_dir: Path, start_step: int = 0):
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():
            lines = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
            kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= start_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self.file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self.tb = SummaryWriter(
            str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None
        )

    def log(self, step: int, scalars: dict[str, float], prefix: str = "train") -> None:
        record = {"step": step, **{k: round(float(v), 6) for k, v in scalars.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in scalars.items():
            self.tb.add_scalar(f"{prefix}/{key}", float(value), step)

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
