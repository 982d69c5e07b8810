"""Cross-entropy on the masked positions only (BERT-style MLM; DeCLIP's text self-supervision).

- Devlin et al., BERT, 2019, https://arxiv.org/abs/1810.04805; Li et al., DeCLIP, ICLR 2022.

The mean is over the masked tokens of the GLOBAL batch: each rank divides its sum by the global
count / world, so the ranks' losses averaged (as DDP does) equal one process on the whole batch even
when ranks mask different numbers of tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synclip import distributed as dist

IGNORE = -100


def masked_token_ce(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """``logits`` (M, V) and ``labels`` (M,) with ``-100`` for positions that do not count.

    Returns ``{"loss", "acc"}``; the loss is 0 (and still differentiable) when nothing is masked.
    Every rank must call it (it counts the masked tokens across ranks).
    """
    keep = labels != IGNORE  # (M,)
    count = dist.all_reduce_sum(keep.sum().float())  # masked tokens in the global batch
    if bool(keep.any()):
        total = F.cross_entropy(logits[keep], labels[keep], reduction="sum")
    else:
        total = logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) alive
    loss = total * dist.world_size() / count.clamp_min(1)
    with torch.no_grad():
        hits = (logits[keep].argmax(-1) == labels[keep]).float().sum()
        acc = hits / keep.sum().clamp_min(1)
    return {"loss": loss, "acc": acc}
