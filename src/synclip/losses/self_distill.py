"""DINO's self-distillation maths: teacher centering and sharpening, cross-view cross-entropy.

Caron et al., Emerging Properties in Self-Supervised Vision Transformers (DINO), ICCV 2021,
https://arxiv.org/abs/2104.14294; facebookresearch/dino ``main_dino.py`` (``DINOLoss``):

- teacher distribution ``softmax((t - c) / tau_t)``: centred by an EMA ``c`` of the teacher's outputs
  (avoids one prototype taking over) and sharpened by a low temperature ``tau_t`` (avoids the uniform
  distribution);
- student distribution ``log_softmax(s / tau_s)``;
- loss: ``-sum_k q_k log p_k`` for every (teacher crop, student crop) pair except a crop with itself,
  averaged over the pairs;
- centre update ``c = m c + (1 - m) mean(t)`` over the global batch.
iBOT (Zhou et al. 2022, https://arxiv.org/abs/2111.07832) applies the same maths per patch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def teacher_probs(logits: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """Centred, sharpened teacher distribution ``softmax((logits - center) / temperature)`` (..., K)."""
    return F.softmax((logits.float() - center.float()) / temperature, dim=-1)


def cross_view_loss(student: torch.Tensor, teacher: torch.Tensor, student_temperature: float) -> torch.Tensor:
    """DINO's loss: student logits (B, S, K) against teacher distributions (B, T, K), T <= S.

    The first T student crops are the teacher's crops (the global ones), so pair (t, t) is skipped;
    every other (teacher crop, student crop) pair contributes ``mean_B(-sum_k q log p)``; the result is
    the mean over the T * S - T pairs.
    """
    t_crops, s_crops = teacher.shape[1], student.shape[1]
    if t_crops > s_crops or (t_crops == 1 and s_crops == 1):
        raise ValueError(
            f"self-distillation needs a student crop besides each teacher crop, got {t_crops} teacher and "
            f"{s_crops} student crops"
        )
    log_p = F.log_softmax(student.float() / student_temperature, dim=-1)  # (B, S, K)
    ce = -torch.einsum("btk,bsk->bts", teacher.float(), log_p).mean(0)  # (T, S): mean over the batch
    keep = ~torch.eye(t_crops, s_crops, dtype=torch.bool, device=ce.device)  # (T, S), False at (t, t)
    return ce[keep].mean()


def masked_patch_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, student_temperature: float
) -> torch.Tensor:
    """iBOT's patch loss: student patch logits (B, P, K) against teacher patch distributions (B, P, K)
    at the masked positions of ``mask`` (B, P) only: per image the mean over its masked patches, then
    the mean over images (images without a masked patch count 0)."""
    log_p = F.log_softmax(student.float() / student_temperature, dim=-1)  # (B, P, K)
    ce = -(teacher.float() * log_p).sum(-1)  # (B, P)
    m = mask.to(ce.dtype)  # (B, P)
    return ((ce * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()


def updated_center(center: torch.Tensor, batch_mean: torch.Tensor, momentum: float) -> torch.Tensor:
    """``momentum * center + (1 - momentum) * batch_mean`` (DINO's ``update_center``)."""
    return center * momentum + batch_mean.to(center.dtype) * (1.0 - momentum)


def linear_warmup(start: float, end: float, warmup: float, progress: float) -> float:
    """``start`` -> ``end`` linearly over the first ``warmup`` of progress, then ``end`` (DINO's teacher
    temperature schedule, there over epochs)."""
    if warmup <= 0 or progress >= warmup:
        return float(end)
    return float(start) + (float(end) - float(start)) * max(0.0, progress) / warmup


def distribution_stats(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Collapse monitors of distributions (N, K): mean per-row entropy (0 = one-hot, log K = uniform),
    entropy of the mean distribution (low = few prototypes used), and the fraction of prototypes that
    are some row's most likely one."""
    probs = probs.detach().float()
    k = probs.shape[-1]
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
    mean = probs.mean(0)  # (K,)
    batch_entropy = -(mean * mean.clamp_min(1e-12).log()).sum()
    used = torch.zeros(k, device=probs.device).index_fill_(0, probs.argmax(-1).unique(), 1.0).mean()
    return {
        "teacher_entropy": entropy / math.log(k),
        "usage_entropy": batch_entropy / math.log(k),
        "prototypes_used": used,
    }
