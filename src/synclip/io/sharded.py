"""Sharded checkpoints (``train.fsdp``): a small ``checkpoint.pt`` that points at a DCP folder.

A run with ``train.fsdp=true`` writes its tensors with ``torch.distributed.checkpoint`` (DCP): each rank
writes its own shards into ``shards/step_<N>/`` and DCP's metadata records which slice of which tensor
each file holds, so the checkpoint loads on any number of ranks (DCP reshards on load). Beside it,
``checkpoint.pt`` (or ``epoch_N.pt``) is an ordinary torch file with everything that is not a sharded
tensor (step, RNG, config, the optimizer's hyper-parameters, the inference heads and the tensors the
objectives export beside the towers, gathered whole) and ``shards``, the folder's path relative to it.

The DCP folder holds flat keys: ``model/<pretrainer key>`` (towers ``model.*`` and objectives
``recipe.*``) and ``optim/<parameter name>/<state name>`` (AdamW's moments and step).

:func:`consolidate` reads the folder back into whole tensors in one process, without a process group,
so :func:`synclip.io.checkpoint.read_checkpoint` (hence ``synclip.load``, ``synclip export``, evaluation
and ``model.pretrained``) reads a sharded checkpoint as if it were a whole one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

MODEL, OPTIM = "model/", "optim/"


def shards_folder(pointer: str | Path, state: dict) -> Path:
    """The DCP folder a pointer file's ``shards`` entry names, relative to the pointer's folder."""
    return Path(pointer).parent / state["shards"]


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a finished DCP checkpoint (DCP writes ``.metadata`` last)."""
    return (Path(folder) / ".metadata").is_file()


def read_tensors(folder: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """Every tensor of the DCP checkpoint ``folder`` whose key starts with ``prefix``, whole, on the CPU
    (key without the prefix); reads without a process group."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = dcp.FileSystemReader(str(folder)).read_metadata()
    state = {
        key: torch.empty(entry.size, dtype=entry.properties.dtype)
        for key, entry in metadata.state_dict_metadata.items()
        if key.startswith(prefix) and isinstance(entry, TensorStorageMetadata)
    }
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(folder), no_dist=True)
    return {key[len(prefix) :]: value for key, value in state.items()}


def consolidate(pointer: str | Path, state: dict) -> dict:
    """A whole checkpoint from a sharded one: the pointer file's ``state`` with ``model`` (open_clip's
    layout plus the exported tensors) and ``recipe`` filled from its DCP folder. The optimizer's state
    stays in the folder (resuming reads it sharded)."""
    tensors = read_tensors(shards_folder(pointer, state), MODEL)
    entries = {**tensors, **state.get("objects", {})}  # non-tensor entries (extra state) sit in the pointer
    model = {k.removeprefix("model."): v for k, v in entries.items() if k.startswith("model.")}
    recipe = {k.removeprefix("recipe."): v for k, v in entries.items() if k.startswith("recipe.")}
    return {**state, "model": {**model, **state["model_extra"]}, "recipe": recipe}


def referenced(run_dir: Path, pointers: list[Path]) -> set[Path]:
    """The shard folders that the readable pointer files among ``pointers`` name."""
    out = set()
    for path in pointers:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError):
            continue
        if isinstance(state, dict) and "shards" in state:
            out.add(shards_folder(path, state).resolve())
    return out
