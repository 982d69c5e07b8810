"""The training forward DDP wraps, and gradient accumulation that keeps the contrastive batch whole.

Accumulation follows open_clip's ``--accum-freq`` (after GradCache, Gao et al. 2021,
https://arxiv.org/abs/2101.06983): the k micro-batches are first encoded without gradients; then each
micro-batch j is encoded again with gradients, its fresh tower outputs are spliced into the cached
ones, the recipe's loss over all k * B rows is computed and backpropagated. Summed over j, the
gradients of the towers equal those of one batch of k * B. It works for any objective because the
splicing happens in :class:`Encoded`, which every objective asks for its features.

Parameters outside the model (temperatures, heads) see the whole loss in each of the k passes, so
their gradient is counted k times; :func:`accumulate_backward` divides it by k (open_clip does not,
which scales its logit-scale gradient by k); objectives' own parameters that enter a tower call (MIM
mask tokens, :meth:`~synclip.objectives.base.Objective.tower_parameters`) are, like the model's, not.
Work that does not go through ``Encoded`` (its views or :meth:`~synclip.objectives.base.Encoded.memo`)
would not be spliced; none does. Dropout masks differ between the cached
and the live pass, as in open_clip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from synclip.objectives import Encoded


class TrainForward(nn.Module):
    """``pretrainer.recipe(enc, batch)``: the module DDP wraps, with the ``Encoded`` chosen by the loop."""

    def __init__(self, pretrainer: nn.Module):
        super().__init__()
        self.pretrainer = pretrainer

    def forward(self, batch: dict, enc: Encoded | None = None) -> dict[str, torch.Tensor]:
        if enc is None:
            return self.pretrainer(batch)
        return self.pretrainer.recipe(enc, batch)


class _SplicingCache(dict):
    """The memo of :class:`SplicedEncoded`: storing live outputs stores them spliced among the cached ones."""

    def __init__(self, cached: list[dict], index: int):
        super().__init__()
        self.cached, self.index = cached, index

    def __setitem__(self, key, live: dict[str, torch.Tensor]) -> None:
        parts = [c[key] for c in self.cached]
        parts[self.index] = live  # (B, ...) with grad
        super().__setitem__(key, {name: torch.cat([p[name] for p in parts]) for name in live})  # (k * B, ...)


class SplicedEncoded(Encoded):
    """Tower outputs of micro-batch ``index`` with gradients, spliced among the cached outputs of the others.

    ``cached[i]`` is the memo of micro-batch i from the no-grad pass; every output comes back with the
    rows of all micro-batches in order: (k * B, ...). The splice happens where ``Encoded`` stores an
    output in its memo, so both its per-view and its grouped (``prefetch``) encoding paths are covered.
    """

    def __init__(self, model: nn.Module, micro_batch: dict, cached: list[dict], index: int):
        super().__init__(model, micro_batch)
        self._cache = _SplicingCache(cached, index)


def split_batch(batch: dict, k: int) -> list[dict]:
    """Cut every source of ``batch`` into k equal micro-batches along dim 0 (tensors and lists of B)."""
    micro: list[dict] = [{} for _ in range(k)]
    for name, source in batch.items():
        size = source.get("size", 0)
        if size % k:
            raise ValueError(f"batch of {size} for source {name!r} does not split into {k} micro-batches")
        b = size // k
        for i in range(k):
            part = {}
            for key, value in source.items():
                if isinstance(value, torch.Tensor | list) and len(value) == size:
                    part[key] = value[i * b : (i + 1) * b]
                else:
                    part[key] = value
            part["size"] = b
            micro[i][name] = part
    return micro


@contextlib.contextmanager
def _no_sync(forward: nn.Module):
    """Keep this backward's gradients local: DDP's ``no_sync``, FSDP2's ``set_requires_gradient_sync``."""
    if hasattr(forward, "no_sync"):
        with forward.no_sync():
            yield
    elif hasattr(forward, "set_requires_gradient_sync"):
        forward.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            forward.set_requires_gradient_sync(True)
    else:
        yield


def accumulate_backward(
    forward: nn.Module,
    pretrainer: nn.Module,
    batch: dict,
    k: int,
    backward: Callable[[torch.Tensor], None],
    autocast: Callable[[], contextlib.AbstractContextManager],
    check: Callable[[dict], None] = lambda out: None,
) -> dict[str, torch.Tensor]:
    """Accumulate the gradient of the recipe loss on ``batch`` (k micro-batches); returns the outputs.

    ``forward`` is the (possibly DDP-wrapped) :class:`TrainForward`; gradient sync happens only on the
    last micro-batch. ``backward(loss)`` runs the (scaled) backward; ``check(out)`` may raise before it.
    """
    model = pretrainer.model
    micro = split_batch(batch, k)
    cached = []
    with torch.no_grad(), autocast():
        for mb in micro:
            enc = Encoded(model, mb)
            forward(mb, enc)  # asks for every view the active objectives need (through FSDP's root)
            cached.append(enc._cache)
    out: dict[str, torch.Tensor] = {}
    for j, mb in enumerate(micro):
        with contextlib.nullcontext() if j == k - 1 else _no_sync(forward):
            with autocast():
                out = forward(batch, SplicedEncoded(model, mb, cached, j))
            check(out)
            backward(out["loss"])
    model_params = {id(p) for p in model.parameters()}
    model_params |= {id(p) for o in pretrainer.recipe.objectives.values() for p in o.tower_parameters()}
    for p in pretrainer.parameters():
        if p.grad is not None and id(p) not in model_params:
            p.grad.div_(k)  # each pass gave these the full gradient
    return out
