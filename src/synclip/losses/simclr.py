"""NT-Xent (SimCLR) between two augmented views, negatives gathered across ranks with gradients.

- Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, 2020,
  https://arxiv.org/abs/2002.05709 (temperature 0.1 in SLIP).
- SLIP's ``SIMCLRLoss`` (Mu et al. 2021): for view a, logits are ``[a·b_all, a·a_all - self]`` / tau;
  the positive is the other view of the same image; the loss averages views a and b.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synclip import distributed as dist


def ntxent_loss(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> dict[str, torch.Tensor]:
    """NT-Xent of two views.

    Args:
        a, b: (B, D) L2-normalised embeddings of the two views on this rank.
        temperature: tau.

    Returns ``{"loss", "acc"}``; local rows against the global batch of N = world * B, which summed
    over ranks (as DDP does) is the loss of one process on the global batch.
    """
    all_a, all_b = dist.all_gather(a), dist.all_gather(b)  # (N, D) each, with gradients
    n_local = a.shape[0]
    targets = torch.arange(n_local, device=a.device) + dist.rank() * n_local  # (B,)
    self_mask = F.one_hot(targets, all_a.shape[0]).to(a.dtype) * 1e9  # (B, N): removes a_i . a_i
    logits_ab = a @ all_b.T / temperature  # (B, D) @ (D, N) -> (B, N)
    logits_aa = a @ all_a.T / temperature - self_mask
    logits_ba = b @ all_a.T / temperature
    logits_bb = b @ all_b.T / temperature - self_mask
    logits_a = torch.cat([logits_ab, logits_aa], dim=1)  # (B, 2N)
    logits_b = torch.cat([logits_ba, logits_bb], dim=1)
    loss = (F.cross_entropy(logits_a, targets) + F.cross_entropy(logits_b, targets)) / 2
    with torch.no_grad():
        acc = (
            (logits_a.argmax(-1) == targets).float().mean() + (logits_b.argmax(-1) == targets).float().mean()
        ) / 2
    return {"loss": loss, "acc": acc}
