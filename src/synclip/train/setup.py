"""Building the pieces of a run from its config: device, seeds, model, recipe, run folder."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from synclip import distributed as dist
from synclip.config import ConfigError, RunConfig, run_dir_for
from synclip.models import TwoTower, create_model, load_state
from synclip.models.hf_text import hf_text_tower
from synclip.models.locking import apply_locking
from synclip.models.published import is_published, read_published
from synclip.models.tower_init import init_image_tower
from synclip.objectives.base import RunContext
from synclip.recipe import Pretrainer, Recipe
from synclip.train.global_bn import convert_global_batchnorm, is_frozen
from synclip.train.view_fields import view_field_problem


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
    published = read_published(m.pretrained) if is_published(m.pretrained) else None
    model: TwoTower = create_model(
        published.arch if published else m.name,  # published weights name their architecture
        pretrained=None if published else m.pretrained,
        image_size=m.image_size,
        context_length=m.context_length,
        patch_dropout=m.patch_dropout,
        image_head=m.image_head,
    )
    if published:
        load_state(model, published.state, where=m.pretrained)
    if m.text_mask_ratio:
        set_text_masking(model, m.text_mask_ratio, cfg.objectives)
    if m.image_init:
        init_image_tower(model, m.image_init)
    apply_locking(model, m.lock_image, m.lock_text, m.unlocked_groups, m.freeze_bn_stats)
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)  # open_clip: checkpoint every residual block of both towers
    # objectives fill their options from the run first (Objective.prepare: vocabularies, view statistics)
    recipe = Recipe(model, cfg.objectives, RunContext(cfg.views, cfg.data.sources))
    problem = view_field_problem(cfg, recipe)  # before any data is loaded
    if problem:
        raise ConfigError(problem)
    if published:  # open_clip weights keep their logit_scale (and logit_bias), as a checkpoint would
        for objective in recipe.active().values():
            objective.load_exported(published.exported)
    elif m.pretrained:
        carry_recipe_state(recipe, m.pretrained)
    return Pretrainer(model, recipe)


# objectives that read the text tower's per-token features, which text masking shortens
TOKEN_READERS = ("mlm", "caption")


def set_text_masking(model: TwoTower, ratio: float, objectives: dict) -> None:
    """Turn on FLIP's text masking (``model.text_mask_ratio``), or say why it cannot be."""
    if hf_text_tower(model) is not None:
        raise ConfigError(
            "model.text_mask_ratio applies to open_clip's text transformer; this model has a Hugging Face "
            "text tower: set model.text_mask_ratio=0"
        )
    if ratio > 0 and type(model).text_outputs is not TwoTower.text_outputs:
        raise ConfigError(
            f"model.text_mask_ratio applies to open_clip's CLIP text transformer; {model.name} encodes text "
            "its own way (a CoCa text tower): set model.text_mask_ratio=0"
        )
    readers = [n for n, o in objectives.items() if (o or {}).get("type", n) in TOKEN_READERS]
    if readers:
        raise ConfigError(
            f"model.text_mask_ratio drops text tokens, but objectives {readers} read the text tower's "
            "per-token features: set model.text_mask_ratio=0 or remove them"
        )
    model.text_mask_ratio = float(ratio)


def tower_normalisation(m) -> tuple[tuple, tuple] | None:
    """(mean, std) on [0, 1] images of the image tower ``model.image_init`` (else ``model.pretrained``)
    loads: EfficientNet-Lite0's, a published tag's, a synclip checkpoint's own; None when nothing is
    loaded or the weights do not say (then the views' own options stand)."""
    from synclip.io.checkpoint import FORMAT, read_checkpoint
    from synclip.models.efficientnet_lite import MEAN, STD
    from synclip.models.published import normalisation

    source = m.image_init or m.pretrained
    if not source:
        return None
    if source == "efficientnet-lite0":
        return MEAN, STD
    if is_published(source):
        return normalisation(source)
    if Path(source).suffix != ".safetensors" and Path(source).is_file():
        state = read_checkpoint(source)
        image = ((state.get("config") or {}).get("views") or {}).get("image") or {}
        if state.get("format") == FORMAT and "mean" in image:
            return tuple(image["mean"]), tuple(image["std"])
    return None


def apply_tower_normalisation(cfg: RunConfig) -> None:
    """Normalise every image view as the loaded image tower expects (:func:`tower_normalisation`),
    unless the recipe or the command line set ``views.<name>.mean`` itself."""
    from synclip.data.views import resolve_view
    from synclip.registry import VIEWS

    found = tower_normalisation(cfg.model)
    if found is None:
        return
    names = {*VIEWS.names(), *cfg.views}
    for name in sorted(names):
        user = dict(cfg.views.get(name) or {})
        try:
            _, options = resolve_view(name, user)
        except ValueError:
            continue
        if "mean" in options and "mean" not in user and "std" not in user:
            cfg.views[name] = {**user, "mean": list(found[0]), "std": list(found[1])}


def carry_recipe_state(recipe: Recipe, path: str) -> list[str]:
    """Start the objectives from a synclip checkpoint's: the entries whose name and shape match.

    A stage that continues an earlier one (FLIP's unmasked tuning, a second CLIP stage) keeps the learned
    temperature and heads; entries of objectives the checkpoint did not have keep their initial values.
    Weights files that are not synclip checkpoints carry only the towers. Returns the names carried over.
    """
    from synclip.io.checkpoint import FORMAT, read_checkpoint

    state = read_checkpoint(path)
    if state.get("format") != FORMAT:
        return []
    own = recipe.state_dict()
    saved = state.get("recipe", {})
    carried = {
        k: v
        for k, v in saved.items()
        if k in own
        and isinstance(v, torch.Tensor)
        and isinstance(own[k], torch.Tensor)
        and v.shape == own[k].shape
    }
    # extra state (a classifier's vocabulary) goes with its module's tensors, or not at all
    for key, value in saved.items():
        if key in own and not isinstance(value, torch.Tensor):
            prefix = key.rsplit(".", 1)[0] + "."
            module_keys = [k for k, v in own.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)]
            if all(k in carried for k in module_keys):
                carried[key] = value
    recipe.load_state_dict(carried, strict=False)
    return sorted(carried)


def sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """With several ranks, make BatchNorm statistics global.

    :class:`~synclip.train.global_bn.GlobalBatchNorm` works on any device and keeps timm's fused
    BatchNorm + activation layers whole and locked towers' BatchNorm as loaded; torch's SyncBatchNorm
    (GPU only) is used on CUDA when every BatchNorm is a plain, trainable one, since it would drop a
    ``BatchNormAct2d``'s activation and make new, trainable parameters for a locked tower.
    """
    from timm.layers import BatchNormAct2d

    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if dist.world_size() == 1 or not bns:
        return module
    plain = not any(isinstance(m, BatchNormAct2d) or is_frozen(m) for m in bns)
    if device.type == "cuda" and plain:
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_global_batchnorm(module)


def prepare_run_dir(cfg: RunConfig) -> Path:
    """Create the run folder; refuse to overwrite an existing run unless resuming it.

    Every rank checks, rank 0 writes, and a barrier keeps any rank from racing ahead (to read a
    checkpoint to resume, or to write one) before all have looked.

    The main rank first locks the folder (:mod:`synclip.train.run_folder`): a folder in use by another
    process stops every rank with RunFolderInUse; temporary files of a killed run are removed.
    """
    from synclip.io import atomic_write_text
    from synclip.train.run_folder import RunFolderInUse, lock_run_folder, remove_stale_temporaries

    run_dir = run_dir_for(cfg)
    in_use = ""
    if dist.is_main():
        try:
            lock_run_folder(run_dir)
        except RunFolderInUse as err:
            in_use = str(err)
    if dist.all_reduce_sum(torch.tensor([float(bool(in_use))])).item() > 0:
        raise RunFolderInUse(in_use or f"run folder {run_dir} is in use by another synclip process")
    exists = (run_dir / "checkpoint.pt").exists()
    dist.barrier()
    if exists and not cfg.train.resume:
        raise FileExistsError(
            f"{run_dir} already holds a run; pass train.resume=auto to continue it, or train.name=... "
            "(or train.out_dir=...) for a new one"
        )
    if dist.is_main():
        remove_stale_temporaries(run_dir)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
    dist.barrier()
    return run_dir
