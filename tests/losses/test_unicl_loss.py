"""UniCL's label-aware loss: CLIP with unique labels, equal labels as mutual positives (checked against a
hand-written sum over the paper's equation), and two gloo ranks equal to one process on the global batch."""

import math

import pytest
import torch
import torch.nn.functional as F

from dist_utils import run_distributed
from synclip.losses import clip_loss, unicl_loss


def _unit(*shape):
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=-1)


def test_unique_targets_give_the_clip_loss_and_gradients():
    image, text = _unit(12, 8).requires_grad_(True), _unit(12, 8).requires_grad_(True)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    out = unicl_loss(image, text, torch.arange(12) * 1000 + 3, scale)
    g_unicl = torch.autograd.grad(out["loss"], (image, text))
    ref = clip_loss(image, text, scale)
    g_clip = torch.autograd.grad(ref["loss"], (image, text))
    assert abs(out["loss"].item() - ref["loss"].item()) < 1e-6
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_unicl, g_clip))
    assert out["acc"].item() == pytest.approx(ref["acc"].item())
    assert out["positives"].item() == 1.0


def _hand_loss(logits: list[list[float]], labels: list[int]) -> float:
    """L = 1/2 * mean_i [ -1/|P(i)| sum_{j in P(i)} log softmax_j(logits_i) ] + the same on logits^T."""
    n = len(labels)

    def direction(rows):
        total = 0.0
        for i in range(n):
            log_z = math.log(sum(math.exp(v) for v in rows[i]))
            pos = [j for j in range(n) if labels[j] == labels[i]]
            total += -sum(rows[i][j] - log_z for j in pos) / len(pos)
        return total / n

    transposed = [[logits[j][i] for j in range(n)] for i in range(n)]
    return (direction(logits) + direction(transposed)) / 2


def test_duplicated_captions_are_mutual_positives():
    # samples 0 and 2 share a caption (same target): each is a positive of the other, in both directions
    image = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    text = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    labels = [5, 9, 5]
    scale = 2.0
    logits = (scale * image @ text.T).tolist()
    out = unicl_loss(image, text, torch.tensor(labels), torch.tensor(scale, dtype=torch.float64))
    assert out["loss"].item() == pytest.approx(_hand_loss(logits, labels), abs=1e-12)
    assert out["loss"].item() != pytest.approx(_hand_loss(logits, [0, 1, 2]))  # not plain CLIP
    assert out["positives"].item() == pytest.approx(5 / 3)  # rows 0 and 2 have 2 positives, row 1 one
    # hits: image 0 -> text 2 (its duplicate caption, a miss for CLIP) and text 2 -> image 0; the other
    # four top matches (image 1 -> text 0, image 2 -> text 1, text 0 -> image 1, text 1 -> image 2) miss
    assert out["acc"].item() == pytest.approx(1 / 3)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="targets"):
        unicl_loss(_unit(4, 8), _unit(4, 8), torch.arange(3), torch.tensor(10.0))


def _shard(rank, world, image, text, targets):
    b = image.shape[0] // world
    x = image[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    y = text[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    out = unicl_loss(F.normalize(x, dim=-1), F.normalize(y, dim=-1), targets[rank * b : (rank + 1) * b], 10.0)
    out["loss"].backward()
    return {"loss": out["loss"].detach(), "x_grad": x.grad, "y_grad": y.grad, "positives": out["positives"]}


@pytest.mark.distributed
def test_two_processes_equal_the_global_batch():
    world = 2
    image, text = torch.randn(8, 6), torch.randn(8, 6)
    targets = torch.tensor([1, 2, 3, 1, 4, 2, 5, 1])  # positives within and across the ranks' shards
    results = run_distributed(_shard, world, image, text, targets)
    xr, yr = image.clone().requires_grad_(True), text.clone().requires_grad_(True)
    ref = unicl_loss(F.normalize(xr, dim=-1), F.normalize(yr, dim=-1), targets, torch.tensor(10.0))
    ref["loss"].backward()
    # DDP averages over ranks: mean of the local losses, and input gradients / world
    assert torch.allclose(torch.stack([r["loss"] for r in results]).mean(), ref["loss"], atol=1e-6)
    assert torch.allclose(torch.cat([r["x_grad"] for r in results]) / world, xr.grad, atol=1e-6)
    assert torch.allclose(torch.cat([r["y_grad"] for r in results]) / world, yr.grad, atol=1e-6)
    assert torch.stack([r["positives"] for r in results]).mean() == pytest.approx(ref["positives"].item())
