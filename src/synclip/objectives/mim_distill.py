"""Masked image modelling with a frozen teacher's patch features as targets ("shallow" CLIP + MIM).

- [0] Fang et al., EVA: Exploring the Limits of Masked Visual Representation Learning at Scale, 2023,
  https://arxiv.org/abs/2211.07636: BEiT-style student (masked patch embeddings replaced by a learned
  mask token), block-wise masking of ~40% of the patches, ``lm_head = Linear(width, teacher_dim)`` on
  the masked positions only, targets = a frozen CLIP ViT's patch tokens after the visual projection,
  loss ``-cosine(pred, target)``.
- [1] Wei et al., MVP: Multimodality-guided Visual Pre-training, 2022, https://arxiv.org/abs/2203.05175:
  "we replace the tokenizer with the vision branch of CLIP"; CLIP features are the masked targets.
- [2] Peng et al., BEiT v2: Masked Image Modeling with Vector-Quantized Visual Tokenizers, 2022,
  https://arxiv.org/abs/2208.06366: the same teachers (CLIP, DINO) behind a VQ tokenizer; here the
  features are regressed directly (``smooth_l1`` on layer-normalised targets is the regression option).
"""

from __future__ import annotations

import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip.data.views.image import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from synclip.losses.mim import MIM_LOSSES, mim_feature_loss
from synclip.models.teacher import Frozen, build_teacher
from synclip.objectives.base import Encoded, Objective, Read, RunContext
from synclip.registry import OBJECTIVES

HEADS = ("linear", "mlp")


def mim_width(model: nn.Module, objective: str) -> int:
    """Width of the model's patch embeddings; a clear error when the image tower is not a ViT."""
    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise ValueError(f"{objective} masks image patches and needs a plain ViT image tower")
    return int(visual.conv1.out_channels)


def check_mask(mask: torch.Tensor, patches: int, view: str) -> int:
    """The number of masked patches per row of ``mask`` (B, P), which must be the same for every row."""
    if mask.dtype != torch.bool or mask.ndim != 2 or mask.shape[1] != patches:
        raise ValueError(
            f"view {view!r} must be a (B, {patches}) bool patch mask, got {tuple(mask.shape)} "
            f"{mask.dtype}; use the image_mask view"
        )
    counts = mask.sum(dim=1)  # (B,)
    if bool((counts != counts[0]).any()):
        raise ValueError(f"every row of {view!r} must mask the same number of patches, got {counts.tolist()}")
    return int(counts[0])


@OBJECTIVES.register("mim_distill")
class MimDistill(Objective):
    """Regress a frozen teacher's per-patch features at the masked positions of the student's view.

    The student encodes ``image_view`` with the patches of ``mask_view`` replaced by a learned mask
    token; a head (``linear``, as EVA, or a 2-layer ``mlp``) maps its final tokens at masked positions
    to the teacher's feature size. The teacher (see :func:`synclip.models.teacher.build_teacher` for
    ``teacher``, ``teacher_model``, ``teacher_layer``, ``teacher_size``, ``teacher_projected``,
    ``teacher_align``) sees the unmasked view and is no part of the trained or saved state.
    ``image_mean`` / ``image_std`` are the student view's normalisation, undone for the teacher; left
    unset, a training run takes them from its ``image_view`` options.
    """

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        teacher: str | None = None,
        teacher_model: str | None = None,
        teacher_layer: int | None = None,
        teacher_size: int | None = None,
        teacher_projected: bool = True,
        teacher_align: str = "auto",
        head: str = "linear",
        loss: str = "cosine",
        image_view: str = "image",
        mask_view: str = "image_mask",
        image_mean: tuple | None = None,
        image_std: tuple | None = None,
    ):
        super().__init__(model, source)
        if not teacher:
            raise ValueError(
                "mim_distill needs a teacher: a synclip checkpoint path, 'efficientnet-lite0', or a "
                "weights file with teacher_model=open_clip:<arch> / timm:<name>"
            )
        if loss not in MIM_LOSSES:
            raise ValueError(f"mim_distill loss must be one of {MIM_LOSSES}, got {loss!r}")
        if head not in HEADS:
            raise ValueError(f"mim_distill head must be one of {HEADS}, got {head!r}")
        width = mim_width(model, "mim_distill")
        self.image_view, self.mask_view, self.loss = image_view, mask_view, loss
        # prepare() fills these from the run's image view; CLIP's statistics when built on its own
        self.image_mean = tuple(image_mean if image_mean is not None else OPENAI_CLIP_MEAN)
        self.image_std = tuple(image_std if image_std is not None else OPENAI_CLIP_STD)
        self.grid = tuple(int(g) for g in model.visual.grid_size)  # (grid_h, grid_w)
        self.teacher = Frozen(
            build_teacher(
                teacher, teacher_model, teacher_layer, teacher_size, teacher_projected, teacher_align
            )
        )
        dim = self.teacher.module.dim
        self.mask_token = nn.Parameter(torch.empty(width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)  # BEiT / EVA
        if head == "linear":
            self.head = nn.Linear(width, dim)
        else:
            self.head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, dim))

    @classmethod
    def prepare(cls, options: dict, ctx: RunContext) -> dict:
        """Unset ``image_mean`` / ``image_std`` come from the run's options of ``image_view``."""
        options = dict(options)
        _, view_options = ctx.view(cls.resolve(options)["image_view"])
        for key, stat in (("image_mean", "mean"), ("image_std", "std")):
            if options.get(key) is None and stat in view_options:
                options[key] = tuple(float(v) for v in view_options[stat])
        return options

    def reads(self) -> list[Read]:
        # the student sees the masked view, encoded in forward (not through the shared memo)
        return [
            Read(self.image_view, "image", self.source, memo=False),
            Read(self.mask_view, None, self.source),
        ]

    def tower_parameters(self) -> list[nn.Parameter]:
        return [self.mask_token]

    def _encode(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        images, mask = batch[self.source][self.image_view], batch[self.source][self.mask_view]
        check_mask(mask, self.grid[0] * self.grid[1], self.mask_view)
        tokens = model.image_outputs(images, mask=mask, mask_token=self.mask_token)["tokens"]  # (B, P, W)
        target = self.teacher.module(images, self.grid, self.image_mean, self.image_std)  # (B, P, C)
        return {"tokens": tokens, "target": target}

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        out = enc.memo(("mim_distill", id(self)), lambda b: self._encode(enc.model, b))
        mask = batch[self.source][self.mask_view]  # (B, P) bool
        pred = self.head(out["tokens"][mask]).float()  # (M, C), M masked patches in the batch
        target = out["target"][mask].float()  # (M, C)
        return mim_feature_loss(pred, target, self.loss)
