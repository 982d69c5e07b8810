"""nCLIP's non-contrastive image-text objective: cross-modal prototype prediction plus entropy terms.

- Zhou et al., Non-Contrastive Learning Meets Language-Image Pre-Training, CVPR 2023,
  https://arxiv.org/abs/2210.09304. Each modality's head gives a distribution over K prototypes; each
  modality predicts the other's assignment (cross-entropy between the two softmax distributions);
  a *sharpness* term lowers the per-sample entropy (no uniform collapse) and a *smoothness* term
  raises the entropy of the batch-mean distribution (no single-prototype collapse; the "ME-MAX" of
  MSN / PAWS). The batch mean is over the GLOBAL batch (all_reduce with gradients).

Only the abstract could be checked against the paper; the exact constants (K, temperatures, weights,
stop-gradient) are options of the ``nclip`` objective, see its docstring.
"""

from __future__ import annotations

import torch

from synclip import distributed as dist


def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy (nats) of distributions along ``dim``; 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim)


def nclip_loss(
    image_logits: torch.Tensor,
    text_logits: torch.Tensor,
    temperature: float = 0.1,
    target_temperature: float | None = None,
    stop_grad_target: bool = False,
    sharpness_weight: float = 1.0,
    smoothness_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """nCLIP terms from prototype logits (B, K) of paired images and texts on this rank.

    ``p = softmax(logits / temperature)``; the target of the other modality is
    ``q = softmax(logits / target_temperature)`` (the same temperature when None), detached when
    ``stop_grad_target``.

        ce     = (H(q_t, p_i) + H(q_i, p_t)) / 2          mean over samples
        sharp  = (H(p_i) + H(p_t)) / 2                    mean per-sample entropy
        smooth = -(H(mean_N p_i) + H(mean_N p_t)) / 2     entropy of the global batch mean
        loss   = ce + sharpness_weight * sharp + smoothness_weight * smooth

    Returns the loss, each term, and collapse monitors: ``entropy`` (per-sample), ``batch_entropy``
    and ``usage`` (fraction of min(K, N) prototypes that are some sample's argmax, global batch).
    """
    target_temperature = target_temperature or temperature
    log_p_i = torch.log_softmax(image_logits / temperature, dim=-1)  # (B, K)
    log_p_t = torch.log_softmax(text_logits / temperature, dim=-1)
    p_i, p_t = log_p_i.exp(), log_p_t.exp()
    q_i = torch.softmax(image_logits / target_temperature, dim=-1)  # (B, K) targets for the text side
    q_t = torch.softmax(text_logits / target_temperature, dim=-1)
    if stop_grad_target:
        q_i, q_t = q_i.detach(), q_t.detach()
    ce = (-(q_t * log_p_i).sum(-1).mean() - (q_i * log_p_t).sum(-1).mean()) / 2
    sharp = (entropy(p_i).mean() + entropy(p_t).mean()) / 2
    mean_i = dist.all_reduce_mean(p_i.mean(0))  # (K,) global batch mean, differentiable
    mean_t = dist.all_reduce_mean(p_t.mean(0))
    batch_entropy = (entropy(mean_i) + entropy(mean_t)) / 2
    smooth = -batch_entropy
    loss = ce + sharpness_weight * sharp + smoothness_weight * smooth
    with torch.no_grad():
        k, n = image_logits.shape[-1], image_logits.shape[0] * dist.world_size()
        used = torch.zeros(2, k, device=image_logits.device)
        used[0, image_logits.argmax(-1)] = 1
        used[1, text_logits.argmax(-1)] = 1
        used = dist.all_reduce_sum(used).clamp_max(1)  # (2, K) prototypes hit anywhere in the batch
        usage = used.sum(-1).mean() / min(k, n)
    return {
        "loss": loss,
        "ce": ce.detach(),
        "sharpness": sharp.detach(),
        "smoothness": smooth.detach(),
        "entropy": sharp.detach(),
        "batch_entropy": batch_entropy.detach(),
        "usage": usage,
    }
