"""FSDP2 (``train.fsdp=true``): towers sharded per transformer block, for towers that do not fit one device.

Every rank keeps only its 1/N slice of each parameter, gradient and optimizer state, all-gathers a
unit's parameters just before the unit runs and reduce-scatters its gradients after its backward
(Zhao et al. 2023, "PyTorch FSDP", https://arxiv.org/abs/2304.11277; here torch's per-parameter
``torch.distributed.fsdp.fully_shard``, "FSDP2"). The units, innermost first:

- every transformer block anywhere in the pretrainer (open_clip's ``ResidualAttentionBlock`` and
  ``CustomResidualAttentionBlock``, timm's ViT ``Block``): both towers' blocks, a captioning decoder's,
  a teacher's that is a submodule. Only one block's full weights exist at a time;
- every :class:`~synclip.models.TwoTower`: what the towers hold outside their blocks (patch and token
  embeddings, final norms, projections; a timm CNN trunk whole). The objectives call it through
  ``image_outputs`` / ``text_outputs``, which are registered as FSDP forward methods;
- the :class:`~synclip.recipe.Recipe`: every objective's own parameters and submodules (heads,
  temperatures, mask tokens, a shared DeCLIP temperature once) in one unit, gathered for the recipe's
  forward. They are sharded too, so the optimizer, the gradient clip and the checkpoint see one kind of
  parameter; they are small next to the towers. Buffers (feature queues, BatchNorm statistics) are never
  sharded: each rank keeps a full copy, updated the same way on every rank as under DDP (queues from
  gathered features, :class:`~synclip.train.global_bn.GlobalBatchNorm` from global statistics);
- the training forward (:class:`~synclip.train.accumulate.TrainForward`) as the root.

Scalar parameters (CLIP's ``logit_scale``, SigLIP's ``logit_bias``) cannot be sharded by FSDP2 (it
shards along dim 0); they stay whole on every rank, out of every unit (``ignored_params``), and
:func:`average_replicated_grads` averages their gradients over ranks after the backward, as DDP would.
:func:`clip_grad_norm` clips the global norm over both kinds.

A frozen teacher that objectives keep outside their submodules (``models.teacher.Frozen``, as
``mim_distill`` does) is not part of the pretrainer: each rank holds it whole, as under DDP.

Mixed precision follows ``train.precision``: with bf16 (fp16) the towers' gathered parameters are cast
to that type for compute while gradients are reduced and the sharded parameters and optimizer state stay
float32 (``MixedPrecisionPolicy(param_dtype, reduce_dtype=float32)``); the recipe unit keeps float32
parameters (temperatures and heads compute under autocast as with DDP). Autocast stays on in both
cases, so the losses run as they do under DDP.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from synclip import distributed as dist

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def block_types() -> tuple[type, ...]:
    """The transformer block classes that become one FSDP unit each."""
    from open_clip.transformer import CustomResidualAttentionBlock, ResidualAttentionBlock
    from timm.models.vision_transformer import Block

    return (ResidualAttentionBlock, CustomResidualAttentionBlock, Block)


def mixed_precision(precision: str):
    """The towers' ``MixedPrecisionPolicy``: compute in ``precision``, reduce gradients in float32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == "fp32":
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=DTYPES[precision], reduce_dtype=torch.float32)


def shard(forward: nn.Module, device: torch.device, precision: str = "fp32") -> nn.Module:
    """Shard ``forward`` (a :class:`TrainForward` around the pretrainer) in place over all ranks and
    ``device``; returns it.

    ``forward`` may sit on the CPU: ``fully_shard`` moves one unit at a time to ``device`` and keeps only
    this rank's shard there, so the whole model never has to fit one device; what no unit holds (the
    scalars, buffers of modules outside every unit) is moved afterwards. Build the optimizer after
    this: sharding replaces every parameter by a sharded ``DTensor``.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    from synclip.models import TwoTower
    from synclip.recipe import Recipe

    # The image tower returns views (pooled = x[:, 0], tokens = x[:, 1:]); FSDP2 warns that an in-place
    # op on one would skip its backward all-gather. Tower outputs are shared between objectives through
    # the Encoded memo, so no objective may change them in place anyway.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    if not dist.is_initialized():
        raise RuntimeError("train.fsdp shards over a process group: start the run with torchrun")
    mesh = init_device_mesh(device.type, (dist.world_size(),))
    towers, full = mixed_precision(precision), MixedPrecisionPolicy()
    scalars = set(replicated_parameters(forward))
    in_towers = {id(m) for tower in forward.modules() if isinstance(tower, TwoTower) for m in tower.modules()}
    # innermost first: fully_shard takes the parameters not already held by a unit below; blocks outside
    # the towers (a captioning decoder's) keep float32 parameters, as the recipe's other modules do
    for module in list(forward.modules()):
        if isinstance(module, block_types()):
            fully_shard(
                module,
                mesh=mesh,
                mp_policy=towers if id(module) in in_towers else full,
                ignored_params=scalars,
            )
    for module in list(forward.modules()):
        if isinstance(module, TwoTower):
            fully_shard(module, mesh=mesh, mp_policy=towers, ignored_params=scalars)
            for method in ("image_outputs", "text_outputs"):
                register_fsdp_forward_method(module, method)
    for module in list(forward.modules()):
        if isinstance(module, Recipe):
            fully_shard(module, mesh=mesh, mp_policy=full, ignored_params=scalars)
    fully_shard(forward, mesh=mesh, mp_policy=full, ignored_params=scalars)
    for tensor in [*scalars, *forward.buffers()]:
        if tensor.device != device:
            tensor.data = tensor.data.to(device)
    return forward


def replicated_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters FSDP2 leaves whole on every rank: the scalars (0-dim), trainable or not."""
    return [p for p in module.parameters() if p.ndim == 0]


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def average_replicated_grads(module: nn.Module) -> None:
    """Average the gradients of :func:`replicated_parameters` over ranks (one all_reduce), as DDP does."""
    grads = [p.grad for p in replicated_parameters(module) if p.grad is not None]
    if not grads or dist.world_size() == 1:
        return
    mean = dist.all_reduce_sum(torch.stack([g.float() for g in grads])) / dist.world_size()  # (n,)
    for grad, value in zip(grads, mean):
        grad.copy_(value)


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does (factor ``max_norm / (norm + 1e-6)``, at most 1), over sharded
    parameters (each rank adds the squares of its shard, summed over ranks) and whole ones (counted
    once). Returns the norm before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    sharded = [g.to_local() for g in grads if hasattr(g, "to_local")]
    whole = [g for g in grads if not hasattr(g, "to_local")]
    zero = torch.zeros((), dtype=torch.float32)
    squares = sum((g.detach().float().pow(2).sum().cpu() for g in sharded), zero)
    squares = dist.all_reduce_sum(squares) + sum((g.detach().float().pow(2).sum().cpu() for g in whole), zero)
    norm = squares.sqrt()
    factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.to(g.device))
    return norm
