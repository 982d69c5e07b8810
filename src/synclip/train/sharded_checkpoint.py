"""Writing and resuming sharded checkpoints (``train.fsdp``) with ``torch.distributed.checkpoint``.

The layout is described in :mod:`synclip.io.sharded`. Saving and loading are collective: every rank
calls them. State dicts come from ``torch.distributed.checkpoint.state_dict.get_state_dict``, which
names the optimizer's state by parameter name instead of by position, so the same files load into a
sharded run on any number of ranks and into an unsharded one (one process, or DDP).
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from synclip import distributed as dist
from synclip.io import checkpoint as ckpt
from synclip.io import sharded
from synclip.models.factory import exported_entries


@contextlib.contextmanager
def _quiet_if_one_process():
    """Without a process group DCP warns that it assumes one process, which is what is meant here."""
    with warnings.catch_warnings():
        if not dist.is_initialized():
            warnings.filterwarnings("ignore", message=".*assuming the intent is to (save|load) in a single")
        yield


def _split(model_state: dict, optim_state: dict) -> tuple[dict, dict]:
    """(flat tensors for DCP, everything else for the pointer file)."""
    tensors = {sharded.MODEL + k: v for k, v in model_state.items() if isinstance(v, torch.Tensor)}
    objects = {k: v for k, v in model_state.items() if not isinstance(v, torch.Tensor)}
    optim_objects: dict[str, dict] = {}
    for name, entries in optim_state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{sharded.OPTIM}{name}/{key}"] = value
            else:
                optim_objects.setdefault(name, {})[key] = value
    rest = {"objects": objects, "optim_objects": optim_objects, "param_groups": optim_state["param_groups"]}
    return tensors, rest


def _whole(tree):
    """``tree`` with every DTensor gathered into a whole CPU tensor (collective: all ranks call it)."""
    if isinstance(tree, dict):
        return {k: _whole(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_whole(v) for v in tree)
    if isinstance(tree, torch.Tensor):
        full = tree.full_tensor() if hasattr(tree, "full_tensor") else tree
        return full.detach().cpu().clone()
    return tree


def inference_entries(recipe: nn.Module) -> tuple[dict, dict, list[str]]:
    """(the recipe's inference heads, the entries it exports beside the towers, the names of those it
    exports itself), with whole tensors. Collective under FSDP."""
    from synclip.train.fsdp import is_sharded

    if is_sharded(recipe):
        recipe.unshard()  # the objectives see their whole parameters, as without sharding
    try:
        exported = recipe.export_state()
        return _whole(recipe.heads()), _whole(exported_entries(exported)), sorted(exported)
    finally:
        if is_sharded(recipe):
            recipe.reshard()


def save_sharded(run_dir: Path, pretrainer, optimizer, meta: dict, names: list[str]) -> Path:
    """Write the shards of step ``meta["step"]`` and the pointer files ``names`` (``checkpoint.pt`` and
    perhaps ``epoch_N.pt``) that name them; returns the shards folder. Collective."""
    from torch.distributed.checkpoint import save
    from torch.distributed.checkpoint.state_dict import get_state_dict

    folder_name = f"shards/step_{meta['step']:08d}"
    folder = run_dir / folder_name
    model_state, optim_state = get_state_dict(pretrainer, optimizer)
    tensors, rest = _split(model_state, optim_state)
    heads, extra, exported = inference_entries(pretrainer.recipe)
    if dist.is_main() and folder.exists():
        shutil.rmtree(folder)  # a run killed while writing this step left it unfinished
    dist.barrier()
    with _quiet_if_one_process():
        save(tensors, checkpoint_id=str(folder), no_dist=not dist.is_initialized())
    if dist.is_main():
        payload = {
            **meta,
            "shards": folder_name,
            "model_name": pretrainer.model.name,
            "model_extra": extra,
            "heads": heads,
            "exported": exported,
            **rest,
        }
        for name in names:
            ckpt.save_atomic(payload, run_dir / name)
    dist.barrier()
    return folder


def remove_unreferenced(run_dir: Path) -> None:
    """Delete shard folders that no pointer file of ``run_dir`` names any more (main rank)."""
    if not dist.is_main() or not (run_dir / "shards").is_dir():
        return
    pointers = [run_dir / "checkpoint.pt", *run_dir.glob("epoch_*.pt")]
    keep = sharded.referenced(run_dir, [p for p in pointers if p.is_file()])
    for folder in (run_dir / "shards").iterdir():
        if folder.is_dir() and folder.resolve() not in keep:
            shutil.rmtree(folder)


def load_sharded(path: Path, state: dict, pretrainer, optimizer) -> None:
    """Load the shards the pointer file ``path`` (read as ``state``) names into ``pretrainer`` and
    ``optimizer``, sharded or not, on any number of ranks. Collective."""
    from torch.distributed.checkpoint import load
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(pretrainer, optimizer)
    tensors, _ = _split(model_state, optim_state)
    try:
        with _quiet_if_one_process():
            load(
                tensors,
                checkpoint_id=str(sharded.shards_folder(path, state)),
                no_dist=not dist.is_initialized(),
            )
    except Exception as err:  # DCP reports missing keys and wrong shapes as CheckpointException
        raise ckpt.CheckpointError(
            f"{path} was written for model {state.get('model_name')!r} with recipe objectives "
            f"{sorted(state['config']['objectives'])}, which do not fit this run: {str(err)[:300]}"
        ) from err
    model_state = {
        **state["objects"],
        **{k[len(sharded.MODEL) :]: v for k, v in tensors.items() if k.startswith(sharded.MODEL)},
    }
    per_param: dict[str, dict] = {name: dict(v) for name, v in state["optim_objects"].items()}
    for key, value in tensors.items():
        if key.startswith(sharded.OPTIM):
            name, entry = key[len(sharded.OPTIM) :].rsplit("/", 1)
            per_param.setdefault(name, {})[entry] = value
    set_state_dict(
        pretrainer,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict={"state": per_param, "param_groups": state["param_groups"]},
    )


def load_whole_into_sharded(state: dict, pretrainer, optimizer) -> None:
    """Load a whole checkpoint (``train.fsdp=false``) into a sharded run: each rank keeps its slices.

    The optimizer's state in a whole checkpoint is numbered by position (``Optimizer.state_dict``); it
    is named here by parameter, in the order :func:`~synclip.train.optim.create_optimizer` lists the
    parameters, which sharding does not change. Collective.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    exported = set(state.get("exported", [])) | {"logit_scale"}  # beside the towers, not in them
    model_state = {f"model.{k}": v for k, v in state["model"].items() if k not in exported}
    model_state |= {f"recipe.{k}": v for k, v in state["recipe"].items()}
    names = {id(p): n for n, p in pretrainer.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    saved = state["optimizer"]
    optim_state = {
        "state": {order[i]: entries for i, entries in saved["state"].items()},
        "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in saved["param_groups"]],
    }
    set_state_dict(
        pretrainer,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=optim_state,
        options=StateDictOptions(full_state_dict=True),
    )
