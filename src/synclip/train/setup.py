"""Building the pieces of a run from its config: device, seeds, model, recipe, run folder."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from synclip import distributed as dist
from synclip.config import RunConfig
from synclip.models import TwoTower, create_model
from synclip.recipe import Pretrainer, Recipe
from synclip.train.global_bn import convert_global_batchnorm


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_distributed(device: torch.device) -> None:
    """Join the process group that torchrun describes in the environment (no-op for one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        if device.type == "cuda":
            torch.cuda.set_device(device)


def build_pretrainer(cfg: RunConfig) -> Pretrainer:
    m = cfg.model
    model: TwoTower = create_model(
        m.name,
        pretrained=m.pretrained,
        image_size=m.image_size,
        context_length=m.context_length,
        patch_dropout=m.patch_dropout,
    )
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)  # open_clip: checkpoint every residual block of both towers
    recipe = Recipe(model, cfg.objectives)
    if m.pretrained:
        carry_recipe_state(recipe, m.pretrained)
    return Pretrainer(model, recipe)


def carry_recipe_state(recipe: Recipe, path: str) -> list[str]:
    """Start the objectives from a synclip checkpoint's: the entries whose name and shape match.

    A stage that continues an earlier one (FLIP's unmasked tuning, a second CLIP stage) keeps the learned
    temperature and heads; entries of objectives the checkpoint did not have keep their initial values.
    Weights files that are not synclip checkpoints carry only the towers. Returns the names carried over.
    """
    from synclip.train.checkpoint import FORMAT, read_checkpoint

    state = read_checkpoint(path)
    if state.get("format") != FORMAT:
        return []
    own = recipe.state_dict()
    carried = {
        k: v for k, v in state["recipe"].items() if k in own and getattr(v, "shape", None) == own[k].shape
    }
    recipe.load_state_dict(carried, strict=False)
    return sorted(carried)


def sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """With several ranks, make BatchNorm statistics global: torch's SyncBatchNorm on CUDA, and
    :class:`~synclip.train.global_bn.GlobalBatchNorm` elsewhere (torch's runs on GPUs only)."""
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    if dist.world_size() == 1 or not has_bn:
        return module
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_global_batchnorm(module)


def run_dir_for(cfg: RunConfig) -> Path:
    return Path(cfg.train.out_dir) / (cfg.train.name or f"{cfg.recipe}-s{cfg.train.seed}")


def prepare_run_dir(cfg: RunConfig) -> Path:
    """Create the run folder; refuse to overwrite an existing run unless resuming it.

    Every rank checks, rank 0 writes, and a barrier keeps any rank from racing ahead (to read a
    checkpoint to resume, or to write one) before all have looked.
    """
    run_dir = run_dir_for(cfg)
    exists = (run_dir / "checkpoint.pt").exists()
    dist.barrier()
    if exists and not cfg.train.resume:
        raise FileExistsError(
            f"{run_dir} already holds a run; pass train.resume=auto to continue it, or train.name=... "
            "(or train.out_dir=...) for a new one"
        )
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    dist.barrier()
    return run_dir
