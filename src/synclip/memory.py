"""A FIFO feature queue with nearest-neighbour lookup (DeCLIP's NNS, after NNCLR / lightly).

- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208:
  a 64K queue of text embeddings; each text is replaced by its top-1 cosine neighbour in the queue.
- Dwibedi et al., With a Little Help from My Friends (NNCLR), 2021, https://arxiv.org/abs/2104.14548

The queue and its pointer are buffers, so they are part of ``state_dict()`` and therefore of
synclip's checkpoints. It is filled with features gathered from every rank (detached), so all ranks
hold the same queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synclip import distributed as dist


class FeatureQueue(nn.Module):
    """``size`` x ``dim`` ring buffer of unit-length features; ``filled`` counts valid rows."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be positive, got {size}")
        self.register_buffer("queue", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    @torch.no_grad()
    def push(self, x: torch.Tensor, gather: bool = True) -> None:
        """Enqueue (B, D) features (gathered from every rank when ``gather``), oldest out first."""
        x = dist.all_gather(x.detach(), grad=False) if gather else x.detach()  # (N, D)
        x = F.normalize(x.float(), dim=-1)[-self.size :]
        n, start = x.shape[0], int(self.ptr)
        idx = (torch.arange(n, device=x.device) + start) % self.size  # (N,) wraps around
        self.queue[idx] = x.to(self.queue.dtype)
        self.ptr.fill_((start + n) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + n))

    @torch.no_grad()
    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Top-1 cosine neighbour in the queue of each row of ``x`` (B, D) -> (B, D), detached.

        An empty queue (the first step) returns ``x`` itself, detached and normalised.
        """
        x = F.normalize(x.detach(), dim=-1)
        n = int(self.filled)
        if n == 0:
            return x
        bank = self.queue[:n].to(x.dtype)  # (n, D)
        index = (x @ bank.T).argmax(dim=-1)  # (B, D) @ (D, n) -> (B, n) -> (B,)
        return bank[index]  # (B, D)

    @torch.no_grad()
    def neighbours(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        """The ``k`` most cosine-similar queue rows of each row of ``x`` (B, D) -> (B, k, D), detached,
        most similar first (DeCLIP's ``NNMemoryBankModule(topk=k)``).

        Fewer than ``k`` filled rows give that many neighbours; an empty queue gives ``x`` itself.
        """
        x = F.normalize(x.detach(), dim=-1)
        n = int(self.filled)
        if n == 0:
            return x.unsqueeze(1)  # (B, 1, D)
        bank = self.queue[:n].to(x.dtype)  # (n, D)
        index = (x @ bank.T).topk(min(k, n), dim=-1).indices  # (B, n) -> (B, k)
        return bank[index]  # (B, k, D)
