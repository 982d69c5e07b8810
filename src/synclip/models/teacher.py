"""Frozen teachers for masked image modelling: images -> per-patch targets on the student's patch grid.

EVA (Fang et al. 2023, https://arxiv.org/abs/2211.07636) and MVP (Wei et al. 2022,
https://arxiv.org/abs/2203.05175) regress a frozen CLIP image tower's patch features (EVA: after the
visual projection) at masked positions; any frozen image network can play the teacher. A teacher here:

- takes the student's view (B, 3, H, W), normalised for the student, resizes it to the teacher's own
  input size and re-normalises it with the teacher's mean / std;
- returns features (B, grid_h * grid_w, C) pooled (adaptive average) or interpolated (bilinear) onto
  the student's patch grid;
- is frozen (eval mode, ``requires_grad=False``, run under ``torch.no_grad()``). Objectives hold it in
  a :class:`Frozen` box, so it is no submodule: not in ``state_dict()`` (checkpoints), ``parameters()``
  (optimizer, DDP, grad clipping), ``.to()`` or ``.train()``; it follows the input's device itself and
  is rebuilt from the objective's options on resume.

What can teach (:func:`build_teacher`): a synclip checkpoint's image tower, an open_clip weights file
(``model="open_clip:<arch>"``), a timm weights file (``model="timm:<name>"``, CNN stage or ViT block
output via timm's ``forward_intermediates``) and ``"efficientnet-lite0"`` (ImageNet EfficientNet-Lite0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip.data.views.image import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from synclip.io.checkpoint import FORMAT, read_checkpoint
from synclip.models.factory import create_model, load_state
from synclip.models.published import is_published, read_published

EFFICIENTNET_LITE0 = "efficientnet-lite0"
ALIGNMENTS = ("auto", "pool", "bilinear")


class Frozen:
    """Holds a module out of sight of ``nn.Module`` (no submodule: no state dict, parameters, ``.to``)."""

    def __init__(self, module: nn.Module):
        self.module = module


class Teacher(nn.Module):
    """A frozen image network -> per-patch targets (B, grid_h * grid_w, C) on the student's grid.

    ``net`` is an open_clip ``VisionTransformer`` (patch tokens after the final norm, projected when
    ``projected``) or a timm model (``forward_intermediates`` at stage / block ``layer``).
    """

    def __init__(
        self,
        net: nn.Module,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        layer: int | None = None,
        projected: bool = True,
        align: str = "auto",
        name: str = "teacher",
    ):
        super().__init__()
        if align not in ALIGNMENTS:
            raise ValueError(f"teacher alignment must be one of {ALIGNMENTS}, got {align!r}")
        self.net, self.size, self.layer, self.projected, self.align = net, int(size), layer, projected, align
        self.name = name
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        with torch.no_grad():
            self.dim = int(self._features(torch.zeros(1, 3, self.size, self.size)).shape[1])  # C

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # a teacher never leaves eval mode (BatchNorm, dropout)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher-normalised images (B, 3, S, S) -> feature map (B, C, h, w)."""
        net = self.net
        if isinstance(net, VisionTransformer):
            tokens = net._pool(net.transformer(net._embeds(x)))[1]  # (B, h * w, W) after the final norm
            if self.projected and net.proj is not None:
                tokens = tokens @ net.proj  # (B, h * w, W) @ (W, C) -> (B, h * w, C)
            h, w = net.grid_size
            return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)  # (B, C, h, w)
        index = -1 if self.layer is None else self.layer
        transformer = hasattr(net, "num_prefix_tokens")  # timm ViTs: final norm, as CLIP's tokens
        out = net.forward_intermediates(x, indices=[index], norm=transformer, intermediates_only=True)
        return out[0]  # (B, C, h, w)

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, grid: tuple[int, int], mean: Sequence[float], std: Sequence[float]
    ) -> torch.Tensor:
        """Targets (B, grid_h * grid_w, C) float32 for student images (B, 3, H, W) normalised by mean / std."""
        param = next(self.net.parameters())
        if param.device != images.device:
            self.to(images.device)
            param = next(self.net.parameters())
        x = images.to(param.dtype)
        student_mean = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        student_std = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x * student_std + student_mean  # (B, 3, H, W) in [0, 1]
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # (B, 3, S, S), teacher-normalised
        feats = self._features(x).float()  # (B, C, h, w)
        return align_to_grid(feats, grid, self.align).flatten(2).transpose(1, 2)  # (B, gh * gw, C)


def align_to_grid(feats: torch.Tensor, grid: tuple[int, int], align: str = "auto") -> torch.Tensor:
    """Feature map (B, C, h, w) -> (B, C, grid_h, grid_w): average pooling onto a coarser grid,
    bilinear interpolation onto a finer one (``auto``), or the one named."""
    if tuple(feats.shape[-2:]) == tuple(grid):
        return feats
    coarser = feats.shape[-2] >= grid[0] and feats.shape[-1] >= grid[1]
    if align == "pool" or (align == "auto" and coarser):
        return F.adaptive_avg_pool2d(feats, grid)
    return F.interpolate(feats, size=grid, mode="bilinear", align_corners=False)


def build_teacher(
    teacher: str,
    model: str | None = None,
    layer: int | None = None,
    size: int | None = None,
    projected: bool = True,
    align: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Teacher:
    """A frozen teacher from a spec.

    Args:
        teacher: ``"efficientnet-lite0"``, a synclip checkpoint (the architecture comes from it), or a
            weights file of the architecture ``model`` names.
        model: ``"open_clip:<arch>"`` (e.g. ``open_clip:ViT-B-16``) or ``"timm:<name>"`` (e.g.
            ``timm:resnet50``) for a weights file; must be left out for the other two kinds.
        layer: timm models only: the stage (CNN) or block (ViT) index of ``forward_intermediates``,
            default the last. CLIP teachers give their final patch tokens.
        size: input resolution; default the teacher's own (ViT teachers only take their own).
        projected: CLIP teachers: targets after the visual projection (EVA) or before it.
        align: ``auto``, ``pool`` or ``bilinear`` onto the student's grid.
        mean, std: the teacher's input normalisation on [0, 1] images; default the teacher's own.
    """
    net, own_mean, own_std, own_size = _load(teacher, model)
    fixed = isinstance(net, VisionTransformer) or getattr(net, "patch_embed", None) is not None
    if isinstance(net, VisionTransformer) and layer is not None:
        raise ValueError(
            f"teacher_layer={layer} picks a timm stage or block; a CLIP teacher gives its final patch "
            "tokens (drop teacher_layer)"
        )
    if fixed and size is not None and int(size) != own_size:
        raise ValueError(
            f"the ViT teacher {teacher!r} takes {own_size} px images, not teacher_size={size}; drop "
            "teacher_size (student images are resized to the teacher's size)"
        )
    return Teacher(
        net,
        size or own_size,
        mean or own_mean,
        std or own_std,
        layer=layer,
        projected=projected,
        align=align,
        name=str(teacher),
    )


def _load(teacher: str, model: str | None) -> tuple[nn.Module, tuple, tuple, int]:
    """(network, its mean, its std, its input size) for a teacher spec."""
    if teacher == EFFICIENTNET_LITE0:
        if model is not None:
            raise ValueError(f"teacher={EFFICIENTNET_LITE0!r} names its architecture; drop teacher_model")
        from synclip.models.efficientnet_lite import MEAN, STD, efficientnet_lite0_imagenet

        return efficientnet_lite0_imagenet(), MEAN, STD, 224
    if is_published(teacher):  # open_clip:<arch>:<tag or file>: names its own architecture
        if model is not None:
            raise ValueError(f"teacher={teacher!r} names its architecture; drop teacher_model")
        published = read_published(teacher)
        two_tower = create_model(published.arch)
        load_state(two_tower, published.state, where=teacher)
        visual = two_tower.visual
        return _vit_only(visual, teacher), published.mean, published.std, int(visual.image_size[0])
    if not Path(teacher).is_file():
        raise FileNotFoundError(
            f"teacher {teacher!r} is neither {EFFICIENTNET_LITE0!r} nor an existing file (a synclip "
            "checkpoint, or open_clip / timm weights with teacher_model=open_clip:<arch> / timm:<name>)"
        )
    if model is None:
        return _synclip_tower(teacher)
    kind, _, name = model.partition(":")
    if kind == "open_clip" and name:
        visual = create_model(name, pretrained=teacher).visual
        return _vit_only(visual, teacher), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, int(visual.image_size[0])
    if kind == "timm" and name:
        net = timm.create_model(name, pretrained=False)
        timm.models.load_checkpoint(net, teacher, strict=True, weights_only=True)
        cfg = net.pretrained_cfg
        return net, tuple(cfg["mean"]), tuple(cfg["std"]), int(cfg["input_size"][-1])
    raise ValueError(f"teacher_model must be 'open_clip:<arch>' or 'timm:<name>', got {model!r}")


def _synclip_tower(path: str) -> tuple[nn.Module, tuple, tuple, int]:
    state = read_checkpoint(path)
    if state.get("format") != FORMAT:
        raise ValueError(
            f"teacher {path} is not a synclip checkpoint; for open_clip or timm weights set "
            "teacher_model=open_clip:<arch> or teacher_model=timm:<name>"
        )
    cfg = state.get("config", {})
    m = cfg.get("model", {})
    two_tower = create_model(
        state["model_name"],
        image_size=m.get("image_size"),
        context_length=m.get("context_length"),
        image_head=m.get("image_head", True),
    )
    load_state(two_tower, state["model"], where=str(path))
    image_view = (cfg.get("views") or {}).get("image") or {}
    mean = tuple(image_view.get("mean", OPENAI_CLIP_MEAN))
    std = tuple(image_view.get("std", OPENAI_CLIP_STD))
    return _vit_only(two_tower.visual, path), mean, std, two_tower.image_size


def _vit_only(visual: nn.Module, where: str) -> VisionTransformer:
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise ValueError(
            f"teacher {where}: only plain ViT image towers give patch tokens; for a CNN teacher use "
            "timm weights (teacher_model=timm:<name>)"
        )
    return visual
