"""Two gloo processes reproduce the single-process SimCLR, multi-view CLIP and nCLIP losses and input
gradients on the global batch (nCLIP's batch-mean entropy included)."""

import pytest
import torch
import torch.nn.functional as F

from dist_utils import run_distributed
from synclip.losses import multiview_clip_loss, nclip_loss, ntxent_loss

pytestmark = pytest.mark.distributed


def _loss(kind, x, y):
    if kind == "simclr":
        return ntxent_loss(F.normalize(x, dim=-1), F.normalize(y, dim=-1), 0.1)["loss"]
    if kind == "multiview_clip":
        texts = [F.normalize(y[:, 0], dim=-1), F.normalize(y[:, 1], dim=-1)]
        return multiview_clip_loss(F.normalize(x, dim=-1), texts, torch.tensor(10.0))["loss"]
    return nclip_loss(x, y, temperature=0.5, sharpness_weight=0.5, smoothness_weight=2.0)["loss"]


def _shard(rank, world, kind, x, y):
    b = x.shape[0] // world
    xs = x[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    ys = y[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    loss = _loss(kind, xs, ys)
    loss.backward()
    return {"loss": loss.detach(), "x_grad": xs.grad, "y_grad": ys.grad}


@pytest.mark.parametrize(
    "kind, shapes",
    [("simclr", ((8, 6), (8, 6))), ("multiview_clip", ((8, 2, 6), (8, 2, 6))), ("nclip", ((8, 10), (8, 10)))],
)
def test_two_processes_equal_the_global_batch(kind, shapes):
    world = 2
    x, y = torch.randn(*shapes[0]), torch.randn(*shapes[1])
    results = run_distributed(_shard, world, kind, x, y)
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    reference = _loss(kind, xr, yr)
    reference.backward()
    # DDP averages over ranks: mean of the local losses, and input gradients / world
    assert torch.allclose(torch.stack([r["loss"] for r in results]).mean(), reference, atol=1e-5)
    assert torch.allclose(torch.cat([r["x_grad"] for r in results]) / world, xr.grad, atol=1e-5)
    assert torch.allclose(torch.cat([r["y_grad"] for r in results]) / world, yr.grad, atol=1e-5)


def _mlm_shard(rank, world, logits, labels):
    from synclip.losses import masked_token_ce

    b = logits.shape[0] // world
    x = logits[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    loss = masked_token_ce(x, labels[rank * b : (rank + 1) * b])["loss"]
    loss.backward()
    return {"loss": loss.detach(), "grad": x.grad}


def test_mlm_mean_is_over_the_global_masked_tokens():
    from synclip.losses import masked_token_ce

    logits = torch.randn(8, 11)
    labels = torch.tensor([3, -100, -100, -100, 1, 2, 5, -100])  # rank 0 masks 1 token, rank 1 masks 3
    results = run_distributed(_mlm_shard, 2, logits, labels)
    x = logits.clone().requires_grad_(True)
    reference = masked_token_ce(x, labels)["loss"]
    reference.backward()
    assert torch.allclose(torch.stack([r["loss"] for r in results]).mean(), reference, atol=1e-6)
    assert torch.allclose(torch.cat([r["grad"] for r in results]) / 2, x.grad, atol=1e-6)
