"""The one module that talks to torch.distributed.

Contrastive losses score local rows against columns gathered from every rank, with gradients flowing
back through the gather (open_clip's ``--local-loss --gather-with-grad``), which equals the loss on the
global batch. Everything here also works without an initialised process group (world size 1).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums each rank's gradient for a shard and hands it to the owner."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)  # (world * B, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        n = grad.shape[0] // world_size()
        return grad[rank() * n : (rank() + 1) * n]


def all_gather(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from every rank along dim 0 -> (world * B, ...).

    With ``grad=True`` gradients reach every rank's shard; with ``grad=False`` the result is detached.
    Every rank must pass the same shape.
    """
    if world_size() == 1:
        return x if grad else x.detach()
    if grad:
        return _GatherWithGrad.apply(x)
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_mean(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """Mean of ``x`` over ranks; differentiable when ``grad`` (for global batch statistics)."""
    if world_size() == 1:
        return x
    if grad:
        return all_gather(x.unsqueeze(0), grad=True).mean(dim=0)
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / world_size()


def _all_reduce_detached(x: torch.Tensor, op: str) -> torch.Tensor:
    if world_size() == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=getattr(dist.ReduceOp, op))
    return y


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of a detached tensor over ranks (counters, metrics)."""
    return _all_reduce_detached(x, "SUM")


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Maximum of a detached tensor over ranks (e.g. the longest caption of the global batch)."""
    return _all_reduce_detached(x, "MAX")


def barrier() -> None:
    if is_initialized():
        dist.barrier()
