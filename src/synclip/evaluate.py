"""Evaluate a checkpoint on the built-in tasks and write ``eval.json`` with its provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from synclip.api import load
from synclip.data.cache import cache_dir


class NoResults(RuntimeError):
    """Every task was skipped: there is nothing to write to eval.json."""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def evaluate_checkpoint(
    checkpoint: str | Path,
    tasks: list[str] | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    limit: int | None = None,
    batch_size: int = 256,
    plots: bool = False,
    cache_features: bool = True,
    **options,
) -> dict:
    """Run the evaluation tasks on a checkpoint; returns ``{"result", "table", "path"}``.

    With ``plots``, confusion matrices and retrieval grids go to ``plots/`` beside ``eval.json``.
    With ``cache_features``, image features are cached under ``<data cache>/features/<checkpoint
    SHA-256>/``: a second evaluation of the same checkpoint file encodes no image set twice.
    ``options`` go to :func:`synclip.eval.run.evaluate` (``templates``, user data sets, ...).
    """
    from synclip.eval.run import evaluate, format_table, write_eval_json
    from synclip.models.published import is_published, parse

    published = is_published(str(checkpoint))  # open_clip:<arch>:<tag or file>, a baseline row
    checkpoint = str(checkpoint) if published else Path(checkpoint)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if out:
        path = Path(out)
    elif published:
        path = Path("eval") / ("-".join(parse(checkpoint)).replace("/", "_") + ".json")
    else:
        path = checkpoint.parent / "eval.json"
    model = load(checkpoint, device=device)
    sha256 = file_sha256(model.weights_file)
    result = evaluate(
        model,
        model.preprocess,
        model.tokenizer,
        tasks=tasks,
        device=device,
        batch_size=batch_size,
        limit=limit,
        plots_dir=path.parent / "plots" if plots else None,
        feature_cache=cache_dir() / "features" / sha256[:32] if cache_features else None,
        **options,
    )
    result["checkpoint"] = {
        "path": checkpoint if published else str(checkpoint.resolve()),
        "file": str(Path(model.weights_file).resolve()),
        "sha256": sha256,
        "model": model.name,
        "recipe": model.config.get("recipe"),
    }
    if not result["tasks"]:
        reasons = "; ".join(f"{k}: {v}" for k, v in result["skipped"].items()) or "no tasks"
        raise NoResults(f"no eval task produced a result ({reasons}); {path} was not written")
    write_eval_json(result, path)
    return {"result": result, "table": format_table(result), "path": path}
