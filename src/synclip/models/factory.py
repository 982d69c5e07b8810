"""``create_model(name)`` over open_clip's architecture configs plus synclip's small CPU configs."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import open_clip
import torch
from open_clip.transformer import VisionTransformer

from synclip.models.coca_towers import CocaTowers
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
    image_head: bool = True,
) -> TwoTower:
    """Build a two-tower model by architecture name.

    Args:
        name: a synclip config (``tiny-vit-48``, ``micro-vit-32``) or an open_clip one (``ViT-B-32``).
            A config with ``multimodal_cfg`` (``coca-tiny-vit-48``, open_clip's ``coca_ViT-B-32``) gives
            :class:`~synclip.models.coca_towers.CocaTowers`, open_clip's CoCa towers.
        pretrained: path to weights in open_clip's state-dict layout (an open_clip checkpoint or a
            file written by ``synclip export``), a synclip checkpoint, or published weights
            ``open_clip:<arch>:<tag or file>`` (:mod:`synclip.models.published`; its architecture
            must be ``name`` or its ``-quickgelu`` twin).
        image_size, patch_dropout, context_length: overrides of the architecture config.
        image_head: False drops the image tower's projection (:func:`drop_image_head`).
    """
    cfg = model_config(name)
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    if patch_dropout:
        cfg["vision_cfg"]["patch_dropout"] = patch_dropout
    if context_length is not None:
        cfg["text_cfg"]["context_length"] = context_length
    cfg.pop("custom_text", None)
    if not image_head:
        drop_image_head(cfg, name)
    if "multimodal_cfg" in cfg:  # open_clip builds a CoCa for these (with custom_text)
        if context_length is not None:
            cfg["multimodal_cfg"]["context_length"] = context_length
        model: TwoTower = CocaTowers(name, **cfg)
    else:
        model = TwoTower(name, **cfg)
    if not image_head and isinstance(model.visual, VisionTransformer):
        model.visual.proj = None  # the pooled (B, W) token is the embedding
    if pretrained:
        load_weights(model, pretrained)
    return model


def image_width(cfg: dict) -> int:
    """Width of the image tower's pooled feature (before any projection) for an architecture config."""
    vision = cfg["vision_cfg"]
    if vision.get("timm_model_name"):
        import timm

        with torch.device("meta"):  # shapes only: no memory, no initialisation
            trunk = timm.create_model(vision["timm_model_name"], pretrained=False, num_classes=0)
        return int(trunk.num_features)
    return int(vision.get("width", 768))


def drop_image_head(cfg: dict, name: str) -> None:
    """Rewrite ``cfg`` for an image tower without a projection head: LiT's ``img_head=False``.

    big_vision's LiT config (``configs/proj/image_text/lit_coco.py``) defaults to ``img_head=False``:
    ``out_dim = (None, dim)`` builds the image ViT with ``num_classes=None``, so ``models/vit.py``
    returns its pre-logits (no ``head`` Dense), and the text tower projects to the image width ``dim``.
    Here the shared embedding width becomes the image tower's pooled width and the image projection
    goes: a timm tower gets open_clip's ``timm_proj: "none"`` (the pooled trunk features pass
    through), a ViT has its ``proj`` removed after building (see :func:`create_model`).
    """
    vision = cfg["vision_cfg"]
    resnet = isinstance(vision.get("layers"), (list, tuple))  # open_clip's ModifiedResNet, attention-pooled
    if resnet or vision.get("attentional_pool") or vision.get("timm_pool") in ("abs_attn", "rot_attn"):
        raise ValueError(
            f"model.image_head=false needs an image tower that pools without projecting; {name!r} "
            "pools with attention (which projects): use another architecture or model.image_head=true"
        )
    cfg["embed_dim"] = image_width(cfg)
    if vision.get("timm_model_name"):
        vision["timm_proj"] = "none"


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


def beside_towers(key: str) -> bool:
    """Keys of an open_clip state dict that objectives own, not the towers: ``logit_scale``,
    ``logit_bias`` and CoCa's ``text_decoder.*`` (the ``caption`` objective's decoder)."""
    return key in ("logit_scale", "logit_bias") or key.startswith("text_decoder.")


def load_state(model: TwoTower, state: dict, where: str = "the state dict") -> None:
    """Load an open_clip-layout state dict into the towers; ``module.`` prefixes and what
    :func:`beside_towers` names are ignored."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not beside_towers(k)}
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
    exported = dict(exported or {})
    logit_scale = exported.pop("logit_scale", None)
    value = DEFAULT_LOGIT_SCALE if logit_scale is None else float(logit_scale)
    state["logit_scale"] = torch.tensor(value)
    state.update({k: v.detach().clone() for k, v in exported.items()})
    return state
