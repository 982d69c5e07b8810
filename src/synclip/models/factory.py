"""``create_model(name)`` over open_clip's architecture configs plus synclip's small CPU configs."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import open_clip
import torch

from synclip.models.two_tower import TwoTower

_CONFIG_DIR = Path(__file__).parent / "configs"
# Register synclip's small configs with open_clip so `open_clip.create_model("tiny-vit-48")` also works.
open_clip.add_model_config(_CONFIG_DIR)
SYNCLIP_MODELS = sorted(p.stem for p in _CONFIG_DIR.glob("*.json"))
DEFAULT_LOGIT_SCALE = math.log(1 / 0.07)


def list_models() -> list[str]:
    """synclip's small configs first, then every open_clip architecture name."""
    return SYNCLIP_MODELS + [m for m in open_clip.list_models() if m not in SYNCLIP_MODELS]


def model_config(name: str) -> dict:
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(
            f"unknown model {name!r}; use one of synclip's {SYNCLIP_MODELS} or an open_clip "
            "architecture name (see `synclip models`)"
        )
    return copy.deepcopy(cfg)


def create_model(
    name: str,
    pretrained: str | None = None,
    image_size: int | None = None,
    patch_dropout: float = 0.0,
    context_length: int | None = None,
) -> TwoTower:
    """Build a two-tower model by architecture name.

    Args:
        name: a synclip config (``tiny-vit-48``, ``micro-vit-32``) or an open_clip one (``ViT-B-32``).
        pretrained: path to weights in open_clip's state-dict layout (an open_clip checkpoint or a
            file written by ``synclip export``), a synclip checkpoint, or published weights
            ``open_clip:<arch>:<tag or file>`` (:mod:`synclip.models.published`; its architecture
            must be ``name`` or its ``-quickgelu`` twin).
        image_size, patch_dropout, context_length: overrides of the architecture config.
    """
    cfg = model_config(name)
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    if patch_dropout:
        cfg["vision_cfg"]["patch_dropout"] = patch_dropout
    if context_length is not None:
        cfg["text_cfg"]["context_length"] = context_length
    cfg.pop("custom_text", None)
    if "hf_model_name" in cfg.get("text_cfg", {}):
        raise ValueError(f"{name!r} uses a Hugging Face text tower, which synclip does not support yet")
    model = TwoTower(name, **cfg)
    if pretrained:
        load_weights(model, pretrained)
    return model


def load_weights(model: TwoTower, path: str) -> None:
    """Load open_clip-layout weights from a file (an open_clip checkpoint or a synclip checkpoint) or
    published weights (``open_clip:<arch>:<tag or file>``)."""
    from synclip.io.checkpoint import read_checkpoint
    from synclip.models.published import is_published, read_published

    if is_published(path):
        published = read_published(path)
        if published.arch != model.name:
            raise ValueError(
                f"{path} holds architecture {published.arch!r}, but the model is {model.name!r}; "
                f"set model.name={published.arch}"
            )
        load_state(model, published.state, where=path)
        return
    state = read_checkpoint(path)
    if isinstance(state.get("model"), dict):
        state = state["model"]
    elif isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    load_state(model, state, where=str(path))


def load_state(model: TwoTower, state: dict, where: str = "the state dict") -> None:
    """Load an open_clip-layout state dict; ``module.`` prefixes and ``logit_scale`` are ignored."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k not in ("logit_scale", "logit_bias")}
    own = model.state_dict()
    for key, value in state.items():
        if key in own and value.shape != own[key].shape:
            raise ValueError(
                f"weights in {where} do not fit architecture {model.name!r}: {key} has shape "
                f"{tuple(value.shape)}, the model expects {tuple(own[key].shape)}"
            )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"weights in {where} do not fit architecture {model.name!r}: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


def open_clip_state_dict(model: TwoTower, exported: dict[str, torch.Tensor] | None = None) -> dict:
    """The model's weights in open_clip's layout plus what the objectives export beside the towers
    (``Recipe.export_state``: ``logit_scale``, ...); ``logit_scale`` is CLIP's 1/0.07 when none does."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {**state, **exported_entries(exported)}


def exported_entries(exported: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """The entries of :func:`open_clip_state_dict` beside the towers: ``logit_scale`` (CLIP's 1/0.07
    when no objective exports one) and whatever else the objectives export."""
    exported = dict(exported or {})
    logit_scale = exported.pop("logit_scale", None)
    value = DEFAULT_LOGIT_SCALE if logit_scale is None else float(logit_scale)
    return {"logit_scale": torch.tensor(value), **{k: v.detach().clone() for k, v in exported.items()}}
