"""Locking towers: LiT's "locked image tuning" and its variants, as model options.

LiT (Zhai et al. 2022, https://arxiv.org/abs/2111.07991) trains only the text tower against a locked,
pre-trained image tower: "locked pre-trained image models with unlocked text models work best".
Locking a tower sets ``requires_grad=False`` on its parameters (so the optimizer never holds them);
``unlocked_groups`` leaves its last N layer groups trainable. A fully locked tower runs under
``torch.no_grad()`` and in eval mode (``TwoTower.image_outputs`` / ``text_outputs`` / ``train``), and
BatchNorm layers of locked parts keep the statistics they were loaded with (``freeze_bn_stats``).

Image groups are open_clip's: ``VisionTransformer.lock`` groups ``[conv1, class and positional
embedding, ln_pre]``, each resblock but the last, ``[last resblock, ln_post]``, ``proj`` (so one
unlocked group is the projection only); ``TimmModel.lock`` locks the timm trunk by timm's
``group_matcher`` groups and never the new projection head (which starts random and must train).
open_clip's own ``freeze_bn_stats`` swaps BatchNorm for ``FrozenBatchNorm2d``, which drops the ReLU6
that timm's ``BatchNormAct2d`` applies and renames the state dict, so here frozen BatchNorm layers are
instead kept in eval mode. Text groups (for ``TwoTower``'s built-in text tower): ``[token_embedding,
positional_embedding]``, each resblock, ``[ln_final]``, ``[text_projection]``.
"""

from __future__ import annotations

import functools
import warnings

import torch
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip.models.hf_text import hf_text_groups, hf_text_tower

_BN = nn.modules.batchnorm._BatchNorm


def frozen(module: nn.Module | None) -> bool:
    """True when ``module`` has parameters and none of them trains."""
    params = list(module.parameters()) if module is not None else []
    return bool(params) and not any(p.requires_grad for p in params)


def text_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups of the text tower, input to output: embeddings, each resblock, ln_final, projection.

    A Hugging Face text tower (``model.text``): embeddings, each encoder layer, the rest of the model;
    its new projection is no group and always trains (it starts random, as a timm tower's head)."""
    if hf_text_tower(model) is not None:
        return hf_text_groups(model.text)
    groups = [[model.token_embedding.weight, model.positional_embedding]]
    cls = getattr(getattr(model, "text", None), "cls_emb", None)  # CoCa's appended CLS embedding
    if isinstance(cls, nn.Parameter):
        groups[0].append(cls)
    groups += [list(block.parameters()) for block in model.transformer.resblocks]
    groups.append(list(model.ln_final.parameters()))
    projection = model.text_projection
    if isinstance(projection, nn.Parameter):
        groups.append([projection])
    elif isinstance(projection, nn.Module):
        groups.append(list(projection.parameters()))
    return [g for g in groups if g]


def lock_text(model: nn.Module, unlocked_groups: int = 0) -> list[str]:
    """Freeze the text tower except its last ``unlocked_groups`` groups; returns modules to keep in eval."""
    groups = text_groups(model)
    for i, group in enumerate(groups):
        for param in group:
            param.requires_grad = i >= len(groups) - unlocked_groups
    if unlocked_groups:
        return []
    return [name for name, _ in _named_text_modules(model)]


def _named_text_modules(model: nn.Module):
    if hf_text_tower(model) is not None:  # the Hugging Face model; its projection trains
        yield from (
            (f"text.transformer.{sub}" if sub else "text.transformer", m)
            for sub, m in model.text.transformer.named_modules()
        )
        return
    # CLIP keeps the text tower's parts on the model; CoCa (synclip.models.coca_towers) under ``text``
    text = getattr(model, "text", None)
    root, prefix = (text, "text.") if isinstance(text, nn.Module) else (model, "")
    for name in ("token_embedding", "transformer", "ln_final", "text_projection"):
        module = getattr(root, name, None)
        if isinstance(module, nn.Module):
            for sub, m in module.named_modules():
                yield prefix + (f"{name}.{sub}" if sub else name), m


def lock_image(model: nn.Module, unlocked_groups: int = 0, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze the image tower ``model.visual`` (open_clip's group order); returns modules to keep in eval.

    A fully locked tower (or timm trunk) stays in eval mode entirely, except its BatchNorm layers
    when ``freeze_bn_stats`` is False (their running statistics then adapt to the new data). With
    unlocked groups, BatchNorm layers of the locked groups stay in eval mode when ``freeze_bn_stats``.
    """
    visual = model.visual
    if isinstance(visual, VisionTransformer):
        visual.lock(unlocked_groups=unlocked_groups)
        root, prefix = visual, "visual"
    elif isinstance(visual, TimmModel):
        with warnings.catch_warnings():  # TimmModel.lock imports timm.models.helpers (deprecated path)
            warnings.simplefilter("ignore", FutureWarning)
            visual.lock(unlocked_groups=unlocked_groups, freeze_bn_stats=False)
        root, prefix = visual.trunk, "visual.trunk"
    else:
        raise ValueError(
            f"model.lock_image supports open_clip ViT and timm image towers, not {type(visual).__name__}"
        )
    keep_eval, whole = [], frozen(root)
    for name, module in root.named_modules():
        full = f"{prefix}.{name}" if name else prefix
        is_bn = isinstance(module, _BN)
        if whole and not (is_bn and not freeze_bn_stats):
            keep_eval.append(full)
        elif is_bn and freeze_bn_stats and frozen(module):
            keep_eval.append(full)
    return keep_eval


def apply_locking(
    model: nn.Module,
    lock_image_tower: bool = False,
    lock_text_tower: bool = False,
    unlocked_groups: int = 0,
    freeze_bn_stats: bool = True,
) -> None:
    """Lock the towers asked for and record in ``model.eval_modules`` what ``model.train()`` keeps in eval."""
    if unlocked_groups < 0:
        raise ValueError(f"model.unlocked_groups must be >= 0, got {unlocked_groups}")
    if unlocked_groups and not (lock_image_tower or lock_text_tower):
        raise ValueError(
            "model.unlocked_groups applies to locked towers: set model.lock_image or model.lock_text"
        )
    keep_eval: list[str] = []
    if lock_image_tower:
        keep_eval += lock_image(model, unlocked_groups, freeze_bn_stats)
    if lock_text_tower:
        keep_eval += lock_text(model, unlocked_groups)
    model.eval_modules = tuple(dict.fromkeys([*getattr(model, "eval_modules", ()), *keep_eval]))
    model.train(model.training)  # apply eval mode to the locked parts now


def keep_locked_in_eval(model: nn.Module) -> None:
    """Switch the modules named in ``model.eval_modules`` to eval mode, each without its children."""
    for name in getattr(model, "eval_modules", ()):
        model.get_submodule(name).training = False


def image_forward(visual: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """A non-ViT image tower's embedding; a locked timm trunk runs under ``no_grad`` before its head."""
    if isinstance(visual, TimmModel) and frozen(visual.trunk) and not frozen(visual.head):
        with torch.no_grad():
            features = visual.trunk(image)  # (B, C) pooled trunk features
        return visual.head(features)  # (B, D)
    return visual(image)


def tower_frozen(model: nn.Module, tower: str) -> bool:
    """Whether ``model``'s ``image`` or ``text`` tower is fully locked."""
    if tower == "image":
        return frozen(model.visual)
    if hf_text_tower(model) is not None:
        return frozen(model.text)  # with its projection
    params = [p for group in text_groups(model) for p in group]
    return bool(params) and not any(p.requires_grad for p in params)


def no_grad_when_locked(tower: str):
    """Decorate a ``TwoTower`` encoding method to run under ``torch.no_grad()`` while ``tower`` is locked,
    so a training step builds no graph and spends no backward or activation memory on it."""

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            if tower_frozen(self, tower):
                with torch.no_grad():
                    return method(self, *args, **kwargs)
            return method(self, *args, **kwargs)

        return run

    return decorate
