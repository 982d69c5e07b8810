"""GlobalBatchNorm on 2 gloo processes equals torch's BatchNorm on the concatenated batch, also for
channels whose mean is large against their spread (where E[x^2] - E[x]^2 loses the variance)."""

import pytest
import torch

from dist_utils import run_distributed
from synclip.train.global_bn import convert_global_batchnorm

pytestmark = pytest.mark.distributed


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, generator=g) * 0.1 + torch.linspace(
        -100, 100, 8
    )  # (16, 8) channel means up to 1000 std
    w = torch.randn(16, 8, generator=g)  # (16, 8) weights of a non-trivial loss
    return x, w


def _bn():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(8)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def _step(bn, x, w):
    x = x.clone().requires_grad_(True)
    y = bn(x)  # (B, 8)
    (y * w).sum().backward()
    return {"y": y.detach(), "x_grad": x.grad, "w_grad": bn.weight.grad, "b_grad": bn.bias.grad}


def _shard(rank, world):
    x, w = _inputs()
    b = x.shape[0] // world
    bn = convert_global_batchnorm(_bn())
    out = _step(bn, x[rank * b : (rank + 1) * b], w[rank * b : (rank + 1) * b])
    # DDP averages parameter gradients over ranks; the loss here is a sum, so the sum over ranks is the total
    for key in ("w_grad", "b_grad"):
        torch.distributed.all_reduce(out[key])
    out["running_var"] = bn.running_var.clone()
    return out


def test_two_processes_equal_batchnorm_on_the_global_batch():
    x, w = _inputs()
    bn = _bn()
    ref = _step(bn, x, w)
    parts = run_distributed(_shard, 2)
    y = torch.cat([p["y"] for p in parts])
    x_grad = torch.cat([p["x_grad"] for p in parts])
    assert torch.allclose(y, ref["y"], atol=1e-3), (y - ref["y"]).abs().max()
    assert torch.allclose(x_grad, ref["x_grad"], rtol=1e-3, atol=1e-2), (x_grad - ref["x_grad"]).abs().max()
    for p in parts:
        assert torch.allclose(p["w_grad"], ref["w_grad"], rtol=1e-3, atol=1e-3)
        assert torch.allclose(p["b_grad"], ref["b_grad"], rtol=1e-3, atol=1e-3)
        assert torch.allclose(p["running_var"], bn.running_var, rtol=1e-3)


def test_conversion_keeps_timm_activations_and_leaves_locked_batchnorm_alone():
    """timm's BatchNormAct2d must keep its ReLU6 when converted; a locked tower's BatchNorm is not touched."""
    import copy

    import timm
    from timm.layers import BatchNormAct2d

    from synclip.train.global_bn import GlobalBatchNorm, GlobalBatchNormAct

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).train()
    x = torch.randn(4, 3, 64, 64)
    before = copy.deepcopy(net)(x)
    converted = convert_global_batchnorm(copy.deepcopy(net))
    fused = {n for n, m in net.named_modules() if isinstance(m, BatchNormAct2d)}
    assert fused and all(
        isinstance(m, GlobalBatchNormAct) for n, m in converted.named_modules() if n in fused
    )
    torch.testing.assert_close(converted(x), before)

    frozen = copy.deepcopy(net)
    for p in frozen.parameters():
        p.requires_grad_(False)
    convert_global_batchnorm(frozen)
    assert not any(isinstance(m, GlobalBatchNorm) for m in frozen.modules())
