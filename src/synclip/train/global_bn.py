"""BatchNorm with statistics over every rank's batch, on any device (torch's SyncBatchNorm is GPU-only).

Objective heads with BatchNorm (SimCLR's and SimSiam's projectors) must normalise with the statistics
of the global batch, or an N-process run is not the one-process run on the same data (Chen et al.
2020, https://arxiv.org/abs/2002.05709, "Global BN"). Each rank computes per-channel sums, then sums of
squared deviations from the global mean; both are gathered with gradients, so the backward pass is
also global.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip import distributed as dist


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A BatchNorm layer (1d/2d/3d) whose training statistics are over all ranks."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training or not self.track_running_stats) or dist.world_size() == 1:
            return super().forward(x)
        c = x.shape[1]
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        # Two passes, as torch's BatchNorm does: E[x^2] - E[x]^2 in float32 loses the variance of a
        # channel whose mean is large against its spread, and the N-process run drifts from the 1-process one.
        local = torch.cat([xf.sum(dims), xf.new_tensor([x.numel() / c])])  # (C + 1,): sums, count
        total = dist.all_gather(local.unsqueeze(0), grad=True).sum(0)  # (C + 1,) over ranks
        n = total[-1]
        mean = total[:c] / n  # (C,)
        centred = xf - mean.view(shape)
        squares = dist.all_gather((centred * centred).sum(dims).unsqueeze(0), grad=True).sum(0)  # (C,)
        var = squares / n  # (C,) biased, used to normalise
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class GlobalBatchNormAct(GlobalBatchNorm):
    """timm's ``BatchNormAct2d`` (BatchNorm, then dropout and activation) with global statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


def is_frozen(bn: nn.Module) -> bool:
    """A BatchNorm of a locked tower: its affine parameters do not train, so it keeps its statistics."""
    params = list(bn.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every trainable BatchNorm layer of ``module`` into a :class:`GlobalBatchNorm`, in place.

    The parameters stay the same objects. timm's ``BatchNormAct2d`` keeps its activation (as
    :class:`GlobalBatchNormAct`); BatchNorm layers of locked towers are left as they are.
    """
    from timm.layers import BatchNormAct2d

    for m in module.modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm) or isinstance(m, nn.SyncBatchNorm):
            continue
        if is_frozen(m):
            continue
        m.__class__ = GlobalBatchNormAct if isinstance(m, BatchNormAct2d) else GlobalBatchNorm
    return module
