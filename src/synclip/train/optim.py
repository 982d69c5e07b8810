"""AdamW with open_clip's weight-decay exclusions and a step-based cosine schedule with warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from synclip.models.weight_decay import no_decay


def create_optimizer(
    module: nn.Module, lr: float, weight_decay: float, betas, eps: float, decoupled: bool = False
) -> torch.optim.AdamW:
    """AdamW over ``module``'s trainable parameters; biases, norms, embeddings and temperatures undecayed.

    torch's AdamW shrinks each decayed parameter by ``lr_t * weight_decay`` per step. With
    ``decoupled`` the shrink is ``(lr_t / lr) * weight_decay``, the schedule times the decay, as
    big_vision applies it (``optax.add_decayed_weights(wd)`` after ``optax.scale(lr)`` and before the
    schedule, big_vision/optax.py); it is AdamW with ``weight_decay / lr``.
    """
    if decoupled and weight_decay:
        if lr <= 0:
            raise ValueError("decoupled weight decay needs a positive learning rate")
        weight_decay = weight_decay / lr  # torch multiplies by lr_t: lr_t * wd / lr = schedule * wd
    decay, rest = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (rest if no_decay(name, param) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    # fused AdamW runs one kernel per step on CPU and CUDA (torch >= 2.4)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)


def warmup_warning(warmup: int, last_step: int, base_lr: float) -> str | None:
    """A sentence when the run ends before (or as) linear warm-up does: the learning rate never reaches
    ``train.lr`` and never decays (a 14-step run with 100 warm-up steps peaks at 15% of it)."""
    if warmup <= 0 or warmup < last_step:
        return None
    peak = last_step / warmup  # of base_lr, at the last step
    return (
        f"warning: train.warmup_steps={warmup} is not shorter than the run ({last_step} optimizer steps): "
        f"the learning rate climbs only to {peak:.0%} of train.lr={base_lr:g} and never decays; set "
        f"train.warmup_steps below {last_step} (e.g. {max(1, last_step // 10)})"
    )


def cosine_lr(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
