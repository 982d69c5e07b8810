"""A-CLIP: CLIP on attentively masked views, with online-to-EMA self-supervision.

Yang et al., Attentive Mask CLIP, ICCV 2023, https://arxiv.org/abs/2212.08653; official code
microsoft/A-CLIP (``models.py`` ``ACLIP.forward``, ``losses.py`` ``ACLIPLoss``, ``main.py``,
``datasets.py``). Per step, for each image:

1. the ``image_aclip`` view gives two online crops and a larger teacher crop holding both
   (:mod:`synclip.data.views.image_aclip`);
2. an EMA copy of the image tower encodes the teacher crop with every patch; its class token's
   attention (averaged over blocks and heads, :mod:`synclip.models.vit_attention`) scores the
   patches; the map is carried onto each online crop and the best ``keep`` = 50% of the patches, in
   blocks of ``block`` x ``block`` = 2 x 2 patches, are kept (:mod:`synclip.models.attentive_mask`);
3. the online tower encodes each online crop from its kept patches only;
4. loss = ``0.5 * CLIP(view 1) + 0.5 * CLIP(view 2) + 1.0 * SimCLR(view 1, view 2)
   + 2.0 * BYOL(online views -> EMA crop)`` (``ACLIPLoss``; SimCLR temperature 0.1).

Heads (``models.py``): SimCLR ``Linear(W, 4096) BN ReLU Linear(4096, 4096) BN ReLU Linear(4096, 256)``
on the class token before the projection (SLIP's); BYOL projector ``Linear(W, 4096) BN ReLU
Linear(4096, 256)`` and predictor ``Linear(256, 4096) BN ReLU Linear(4096, 256)``, all without bias; the
EMA copy holds the image tower and the BYOL projector (``visual_ema``, ``im_proj_byol_e``), its
momentum cosine from 0.996 to 1 over the steps (``--momentum-ema``, ``utils.cosine_scheduler``).
The official code applies each head once to both views' rows together (BatchNorm statistics over
2B rows) and runs the EMA projector in training mode (batch statistics of the teacher crops); both
are kept here (:func:`batch_statistics_norm`; the shared :class:`EmaTeacher` is otherwise in eval mode).

Where this differs from the official code, and why:

- its ``ACLIPLoss`` feeds the first view to SimCLR as both views (``image_ssl_embed[:bs]`` twice);
  the abstract describes "instance contrastive learning tasks between these views", which is what
  this computes (view 1 against view 2);
- it also keeps EMA copies of the text tower and projections, used only to evaluate the EMA model;
  they do not enter the loss and are not kept here.

As in the official code, ``freeze_patch_embed`` (default True) leaves the image tower's patch
projection at its initial weights (its ``MaskVisionTransformer``; the MoCo v3 trick, Chen et al. 2021).

Options that are ours: ``block`` in the recipes is scaled to our small grids (see
``recipes/aclip.yaml``); ``source``, ``view``, ``text_view``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip import distributed as dist
from synclip.heads import mlp
from synclip.losses import byol_loss, clip_loss, ntxent_loss
from synclip.models.attentive_mask import attentive_keep, kept_blocks, scores_in_crops
from synclip.models.ema_teacher import EmaTeacher
from synclip.models.teacher import Frozen
from synclip.models.vit_attention import class_token_attention
from synclip.objectives.base import Encoded, Read, TemperatureObjective
from synclip.registry import OBJECTIVES


def byol_mlp(dims: list[int]) -> nn.Sequential:
    """A-CLIP's BYOL heads: ``Linear BN ReLU ... Linear``, no bias anywhere, no BatchNorm at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=False))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def batch_statistics_norm(x: torch.Tensor, bn: nn.BatchNorm1d) -> torch.Tensor:
    """``bn`` applied to ``x`` (B, C) with the statistics of the global batch (every rank's B rows,
    equal on every rank) and without touching its running statistics.

    The official EMA projector is a BatchNorm head in training mode; the teacher's copy is frozen, so
    the run's global-BatchNorm conversion (which converts trainable layers) leaves it alone and this
    computes its global statistics instead, so that N processes equal one.
    """
    xf = x.float()
    mean = dist.all_reduce_mean(xf.mean(0), grad=False)  # (C,)
    var = dist.all_reduce_mean((xf - mean).pow(2).mean(0), grad=False)  # (C,) biased, as BatchNorm's
    y = (xf - mean) * torch.rsqrt(var + bn.eps)  # (B, C)
    if bn.affine:
        y = y * bn.weight + bn.bias
    return y.to(x.dtype)


@OBJECTIVES.register("aclip")
class AClip(TemperatureObjective):
    """A-CLIP's whole loss over the ``image_aclip`` view and the caption (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        view: str = "image_aclip",
        text_view: str = "text",
        keep: float = 0.5,
        block: int = 2,
        momentum: float = 0.996,
        simclr_weight: float = 1.0,
        simclr_temperature: float = 0.1,
        simclr_mlp_dim: int = 4096,
        simclr_dim: int = 256,
        byol_weight: float = 2.0,
        byol_mlp_dim: int = 4096,
        byol_dim: int = 256,
        freeze_patch_embed: bool = True,
        **temperature,
    ):
        super().__init__(model, source, **temperature)
        visual = getattr(model, "visual", None)
        if (
            not isinstance(visual, VisionTransformer)
            or visual.attn_pool is not None
            or visual.pool_type != "tok"
        ):
            raise ValueError(
                "aclip needs a plain ViT image tower pooled by its class token (e.g. tiny-vit-48, "
                "micro-vit-32): it reads the class token's attention and drops patch tokens"
            )
        grid_h, grid_w = (int(g) for g in visual.grid_size)
        if block < 1 or grid_h % block or grid_w % block:
            raise ValueError(
                f"aclip.block={block} must divide the {grid_h} x {grid_w} patch grid; use a divisor (1 keeps "
                "single patches)"
            )
        kept_blocks((grid_h // block) * (grid_w // block), keep)  # a bad fraction fails here
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"aclip.momentum must lie in [0, 1], got {momentum}")
        self.view, self.text_view = view, text_view
        self.keep, self.block, self.grid = float(keep), int(block), (grid_h, grid_w)
        self.simclr_weight, self.simclr_temperature = float(simclr_weight), float(simclr_temperature)
        self.byol_weight = float(byol_weight)
        width = int(getattr(model, "vision_width", None) or visual.conv1.out_channels)
        self.simclr_head = mlp([width, simclr_mlp_dim, simclr_mlp_dim, simclr_dim])
        self.projector = byol_mlp([width, byol_mlp_dim, byol_dim])
        self.predictor = byol_mlp([byol_dim, byol_mlp_dim, byol_dim])
        if freeze_patch_embed:
            visual.conv1.requires_grad_(False)
        self._model = Frozen(model)  # for the EMA update; not a submodule (the towers are the model's)
        self.teacher = EmaTeacher(self._student(), start=momentum, end=1.0)

    def _student(self) -> nn.ModuleDict:
        """What the teacher follows: the online image tower and BYOL projector (built on each call, so
        the objective does not register the model's tower as its own submodule)."""
        return nn.ModuleDict({"visual": self._model.module.visual, "projector": self.projector})

    def reads(self) -> list[Read]:
        return [
            Read(self.view, "image", self.source, memo=False),  # encoded here: teacher crop + kept patches
            Read(self.text_view, "text", self.source),
        ]

    # -- the masked online views -------------------------------------------------------------------
    def _teacher(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher crops (B, 3, H, W) -> class-token attention (B, P) and pooled feature (B, W)."""
        with torch.no_grad():
            out, attention = class_token_attention(self.teacher.module["visual"], crop)  # (B, W), (B, P)
        return attention, out["pooled"]

    @torch.no_grad()
    def teacher_projection(self, pooled: torch.Tensor) -> torch.Tensor:
        """The EMA projector on the teacher's pooled features (B, W) -> BYOL targets (B, byol_dim), its
        BatchNorm with the statistics of the whole batch, as the official EMA head in training mode."""
        target = pooled
        for layer in self.teacher.module["projector"]:
            target = (
                batch_statistics_norm(target, layer) if isinstance(layer, nn.BatchNorm1d) else layer(target)
            )
        return target

    def keep_indices(self, attention: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Teacher attention (B, P) and online boxes (B, V, 4) -> kept patch indices (B, V, K)."""
        b, v = boxes.shape[:2]
        scores = attention.reshape(b, *self.grid)  # (B, gh, gw)
        in_crops = scores_in_crops(scores, boxes)  # (B, V, gh, gw)
        return attentive_keep(in_crops.reshape(b * v, *self.grid), self.keep, self.block).reshape(b, v, -1)

    def _encode(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        source = batch[self.source]
        crops, boxes = source.get(self.view), source.get(f"{self.view}_boxes")
        if crops is None or boxes is None or crops.ndim != 5 or crops.shape[1] != 3:
            raise ValueError(
                f"aclip reads view {self.view!r} as (B, 3, 3, H, W) crops with {self.view}_boxes (B, 2, 4); "
                f"point objectives.aclip.view at an image_aclip view"
            )
        b = crops.shape[0]
        attention, teacher_pooled = self._teacher(crops[:, 2])  # (B, P), (B, W)
        keep = self.keep_indices(attention, boxes)  # (B, 2, K)
        online = crops[:, :2].reshape(2 * b, *crops.shape[2:])  # (2B, 3, H, W)
        out = model.image_outputs(online, keep=keep.reshape(2 * b, -1))  # kept patches only
        return {
            "embed": out["embed"].reshape(b, 2, -1),  # (B, 2, D)
            "pooled": out["pooled"].reshape(b, 2, -1),  # (B, 2, W)
            "teacher": teacher_pooled,  # (B, W), no gradient
            "keep": keep,  # (B, 2, K)
        }

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        out = enc.memo(("aclip", id(self)), lambda b: self._encode(enc.model, b))
        text = enc.text(self.text_view, self.source)["features"]  # (B, D)
        image = F.normalize(out["embed"], dim=-1)  # (B, 2, D)
        b = image.shape[0]
        first, second = clip_loss(image[:, 0], text, self.scale()), clip_loss(image[:, 1], text, self.scale())
        clip = (first["loss"] + second["loss"]) / 2  # 0.5 * each view (ACLIPLoss)

        pooled = out["pooled"].transpose(0, 1).reshape(2 * b, -1)  # (2B, W): view 1 rows, then view 2
        z = F.normalize(self.simclr_head(pooled), dim=-1)  # (2B, simclr_dim), one call as the official
        simclr = ntxent_loss(z[:b], z[b:], self.simclr_temperature)
        prediction = self.predictor(self.projector(pooled))  # (2B, byol_dim)
        # projected here, not in _encode: its BatchNorm sees the whole batch also under accumulation
        target = self.teacher_projection(out["teacher"])  # (B, byol_dim)
        byol = byol_loss(prediction, target.repeat(2, 1))  # each view against the teacher crop
        loss = clip + self.simclr_weight * simclr["loss"] + self.byol_weight * byol
        return {
            "loss": loss,
            "clip_loss": clip.detach(),
            "clip_acc": (first["acc"] + second["acc"]) / 2,
            "simclr_loss": simclr["loss"].detach(),
            "byol_loss": byol.detach(),
            "logit_scale": self.scale().detach(),
            "momentum": loss.new_tensor(self.teacher.momentum(self._update_progress())).detach(),
        }

    # -- after each step -------------------------------------------------------------------------
    def _update_progress(self) -> float:
        """Progress of the EMA update after this step: the official loop updates the teacher before
        step ``it + 1`` with momentum ``schedule[it + 1]``, so ours after step ``it`` uses ``it + 1``."""
        return min(1.0, (self.step + 1) / self.total_steps) if self.total_steps else 0.0

    @torch.no_grad()
    def post_step(self) -> None:
        super().post_step()  # the temperature's clamp
        self.teacher.update(self._student(), self._update_progress())
