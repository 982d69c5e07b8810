"""Published weights wherever a checkpoint goes: ``open_clip:<architecture>:<pretrained>``.

``<pretrained>`` is what open_clip's own ``--pretrained`` takes:

- a pretrained tag of that architecture (``open_clip:ViT-B-32:laion2b_s34b_b79k``,
  ``open_clip:ViT-B-32:openai``; ``open_clip.list_pretrained()``): the file is resolved by open_clip's
  own loader (``open_clip.pretrained.download_pretrained``), which reads the Hugging Face cache
  (``HF_HOME`` / ``HF_HUB_CACHE``) or ``~/.cache/clip`` and downloads only what is missing there, or
  the folder ``$SYNCLIP_WEIGHTS_CACHE`` (open_clip's ``cache_dir``) when set;
- a file: open_clip-layout weights (``state_dict`` or not, ``.safetensors`` too), a ``synclip export``,
  or one of OpenAI's TorchScript archives (``ViT-B-32.pt``), read by ``open_clip.load_openai_model``.

The file's ``logit_scale`` (and ``logit_bias``) are kept (:attr:`Published.exported`), the image
normalisation is the tag's (OpenAI's mean / std otherwise), and weights trained with QuickGELU (OpenAI's,
tags marked ``quick_gelu``) build the architecture's ``-quickgelu`` config.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from synclip.io.checkpoint import CheckpointError

PREFIX = "open_clip:"
BESIDE = ("logit_scale", "logit_bias")  # open_clip keeps these beside the towers
SYNTAX = (
    "open_clip:<architecture>:<pretrained tag or weights file>, e.g. open_clip:ViT-B-32:laion2b_s34b_b79k"
)


@dataclass
class Published:
    """Weights resolved from a spec: ``arch`` to build, tower ``state``, ``exported`` (logit_scale, ...)."""

    spec: str
    arch: str
    state: dict[str, torch.Tensor]
    exported: dict[str, torch.Tensor] = field(default_factory=dict)
    mean: tuple[float, ...] = OPENAI_DATASET_MEAN
    std: tuple[float, ...] = OPENAI_DATASET_STD
    path: Path | None = None  # the file the weights came from

    @property
    def label(self) -> str:
        return self.spec.removeprefix(PREFIX).replace("/", "_").replace(":", "-")


def is_published(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse(spec: str) -> tuple[str, str]:
    """``open_clip:ARCH:PRETRAINED`` -> (ARCH, PRETRAINED)."""
    arch, sep, pretrained = spec.removeprefix(PREFIX).partition(":")
    if not arch or not sep or not pretrained:
        raise ValueError(f"{spec!r}: published weights are named {SYNTAX}")
    return arch, pretrained


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's CLIP ``.pt`` files are)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())


def resolve_file(arch: str, pretrained: str) -> tuple[Path, dict]:
    """(weights file, open_clip's pretrained config or {}) for a tag or a file."""
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(arch, pretrained)
    if cfg:
        cache = os.environ.get("SYNCLIP_WEIGHTS_CACHE") or None
        try:
            path = download_pretrained(cfg, cache_dir=cache)
        except Exception as err:  # no network and not in the cache: name where it was looked for
            raise CheckpointError(
                f"open_clip:{arch}:{pretrained}: the weights are not in the local cache "
                f"({cache or 'the Hugging Face cache / ~/.cache/clip'}) and could not be downloaded "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); fetch them "
                "once where there is network, or set SYNCLIP_WEIGHTS_CACHE to a folder that holds them"
            ) from err
        return Path(path), cfg
    if Path(pretrained).expanduser().is_file():
        return Path(pretrained).expanduser(), {}
    tags = list_pretrained_tags_by_model(arch)
    raise CheckpointError(
        f"open_clip:{arch}:{pretrained}: {pretrained!r} is neither a pretrained tag of {arch} "
        f"({', '.join(tags) if tags else 'it has none'}) nor an existing file"
    )


def _read_state(path: Path) -> tuple[dict, bool]:
    """(open_clip-layout state dict with logit_scale, whether the weights use QuickGELU)."""
    if is_torchscript(path):
        model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")  # OpenAI's loader
        return {k: v.detach().clone() for k, v in model.state_dict().items()}, True
    from open_clip.factory import load_state_dict

    try:
        state = load_state_dict(str(path), device="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"cannot read weights {path} ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from err
    if isinstance(state.get("model"), dict):  # a synclip training checkpoint
        state = state["model"]
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}, False


def architecture(arch: str, quick_gelu: bool) -> str:
    """``arch``, or its ``-quickgelu`` twin for weights trained with QuickGELU."""
    config = open_clip.get_model_config(arch)  # synclip's configs are registered by synclip.models
    if config is None:
        raise ValueError(f"unknown model {arch!r}; see `synclip models` for the architecture names")
    if not quick_gelu or config.get("quick_gelu"):
        return arch
    twin = f"{arch}-quickgelu"
    if open_clip.get_model_config(twin) is None:
        raise ValueError(
            f"these weights were trained with QuickGELU, but {arch!r} uses GELU and there is no {twin!r} "
            "config; add one with quick_gelu: true (open_clip.add_model_config)"
        )
    return twin


def normalisation(spec: str) -> tuple[tuple, tuple]:
    """(mean, std) the weights of ``spec`` expect, without reading them: the tag's, else OpenAI's."""
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(*parse(spec))
    return tuple(cfg.get("mean", OPENAI_DATASET_MEAN)), tuple(cfg.get("std", OPENAI_DATASET_STD))


def read_published(spec: str) -> Published:
    """Resolve ``spec`` and read its weights (CPU)."""
    arch, pretrained = parse(spec)
    path, cfg = resolve_file(arch, pretrained)
    state, quick = _read_state(path)
    # beside the towers: logit_scale / logit_bias, and a CoCa's text_decoder (the caption objective's)
    exported = {k: state.pop(k) for k in list(state) if k in BESIDE or k.startswith("text_decoder.")}
    return Published(
        spec=spec,
        arch=architecture(arch, quick or bool(cfg.get("quick_gelu"))),
        state=state,
        exported=exported,
        mean=tuple(cfg.get("mean", OPENAI_DATASET_MEAN)),
        std=tuple(cfg.get("std", OPENAI_DATASET_STD)),
        path=path,
    )
