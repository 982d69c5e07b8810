"""Which parameters get no weight decay: one rule shared by pre-training and fine-tuning."""

from __future__ import annotations

import torch


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Norms, biases, embeddings of rank < 2 and temperatures get no weight decay (CLIP / open_clip)."""
    lowered = name.lower()
    return param.ndim < 2 or any(t in lowered for t in ("bn", "ln", "norm", "bias", "logit_scale"))
