"""Checkpoints: atomic writes, ``weights_only`` reads, clear errors for bad files.

A checkpoint holds ``model`` (open_clip state-dict layout, with what the objectives export beside
the towers: ``logit_scale``, ...), ``recipe`` (every objective's state: heads, temperatures, queues),
``heads`` (what the objectives need at inference, see ``Objective.inference_state``), ``optimizer``,
``scaler``, ``step``, ``finished``, ``bad_samples``, RNG states and the fully resolved ``config``.
A run with ``train.fsdp`` writes the tensors sharded beside it (:mod:`synclip.io.sharded`); reading
consolidates them, so every reader sees the same dictionary.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from synclip.io import sharded
from synclip.io.atomic import atomic_write

FORMAT = "synclip-checkpoint/1"


class CheckpointError(RuntimeError):
    """An unreadable or incompatible checkpoint."""


def save_atomic(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` with torch.save through :func:`synclip.io.atomic.atomic_write`."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def read_checkpoint(path: str | Path, consolidate: bool = True) -> dict:
    """Load a checkpoint or weights file on the CPU with ``weights_only=True``.

    A sharded checkpoint (``train.fsdp``) comes back whole, ``model`` and ``recipe`` read from its
    shards folder; with ``consolidate=False`` only its pointer file is read (resuming loads the shards
    itself, each rank its slice).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    state = _load(path)
    if not (isinstance(state, dict) and "shards" in state):
        return state
    folder = sharded.shards_folder(path, state)
    if not sharded.is_complete(folder):
        raise CheckpointError(
            f"{path} is a sharded checkpoint whose folder {folder} is missing or incomplete: keep the "
            "file with its shards/ folder, or use an earlier checkpoint of the run"
        )
    return sharded.consolidate(path, state) if consolidate else state


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        if "TorchScript" in str(err):  # OpenAI's CLIP .pt files: intact, read through open_clip
            raise CheckpointError(
                f"{path} is a TorchScript archive (OpenAI's CLIP weights are): name it "
                f"open_clip:<architecture>:{path}, e.g. open_clip:ViT-B-32:{path}"
            ) from err
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "the file is truncated or not a torch checkpoint: use an earlier checkpoint of the run"
        ) from err


def read_synclip_checkpoint(path: str | Path, consolidate: bool = True) -> dict:
    """Like ``read_checkpoint`` but requires a synclip training checkpoint."""
    state = read_checkpoint(path, consolidate)
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a synclip checkpoint (expected format {FORMAT!r})")
    return state


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
