"""Small helpers for tests that train on a slice of the real emoji corpus."""

from pathlib import Path


def write_subset(corpus: Path, out: Path, n: int, start: int = 0) -> Path:
    """Twemoji pairs ``start`` to ``start + n`` as a TSV with absolute image paths."""
    lines = (corpus / "twemoji.tsv").read_text().splitlines()
    header, rows = lines[0], lines[1 + start : 1 + start + n]
    cols = header.split("\t")
    fp = cols.index("filepath")
    fixed = []
    for row in rows:
        cells = row.split("\t")
        cells[fp] = str((corpus / cells[fp]).resolve())
        fixed.append("\t".join(cells))
    out.write_text("\n".join([header, *fixed]) + "\n")
    return out


def small_run_overrides(tsv: Path, out_dir: Path, **extra) -> list[str]:
    """Overrides for a fast CPU run of micro-vit-32 on a CSV source."""
    base = {
        "model.name": "micro-vit-32",
        "data.sources": "{pairs: {kind: csv, path: " + str(tsv) + ", caption_key: caption}}",
        "data.workers": 0,
        "train.batch_size": 32,
        "train.epochs": 2,
        "train.warmup_steps": 2,
        "train.lr": 2e-3,
        "train.out_dir": str(out_dir),
        "train.progress": "false",
        "train.log_every": 2,
        "eval.at_end": "false",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
