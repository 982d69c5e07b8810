import math

import pytest
import torch
import torch.nn.functional as F

from dist_utils import run_distributed
from synclip.losses import siglip_loss
from synclip.losses.siglip import INIT_LOGIT_BIAS, INIT_LOGIT_SCALE, LogitScaleBias


def naive_siglip_loss(image, text, t, b):
    """Zhai et al. 2023, Algorithm 1 written out pair by pair: -1/|B| sum_ij log sigmoid(z_ij * logit_ij)."""
    n = image.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            logit = t * image[i] @ text[j] + b
            total = total - math.log(1.0 / (1.0 + math.exp(-z * float(logit))))
    return total / n


@pytest.mark.parametrize("n,d,t,b", [(2, 3, 10.0, -10.0), (7, 16, 3.0, 0.5), (16, 8, 25.0, -4.0)])
def test_siglip_loss_matches_pairwise_formula(n, d, t, b):
    image = F.normalize(torch.randn(n, d, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(n, d, dtype=torch.float64), dim=-1)
    out = siglip_loss(image, text, torch.tensor(t, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert out["loss"].item() == pytest.approx(naive_siglip_loss(image, text, t, b), rel=1e-10)


def test_init_constants_are_the_papers():
    params = LogitScaleBias()
    t, b = params()
    assert INIT_LOGIT_SCALE == pytest.approx(math.log(10)) and INIT_LOGIT_BIAS == -10.0
    assert t.item() == pytest.approx(10.0) and b.item() == -10.0


def test_perfect_alignment_gives_full_accuracies_and_small_loss():
    x = torch.eye(6)
    out = siglip_loss(x, x, torch.tensor(30.0), torch.tensor(-15.0))  # +15 on the diagonal, -15 elsewhere
    assert out["acc"].item() == out["pos_acc"].item() == out["neg_acc"].item() == 1.0
    assert out["loss"].item() == pytest.approx(6 * math.log1p(math.exp(-15.0)), rel=1e-4)


def test_sign_accuracies_count_wrong_signs():
    x = torch.eye(4)
    # scale 1, bias -2: every logit is negative, so positives are all wrong and negatives all right
    out = siglip_loss(x, x, torch.tensor(1.0), torch.tensor(-2.0))
    assert out["pos_acc"].item() == 0.0 and out["neg_acc"].item() == 1.0
    assert out["acc"].item() == 1.0  # argmax still finds the matching text


def test_scale_and_bias_receive_gradients():
    params = LogitScaleBias()
    image = F.normalize(torch.randn(8, 5), dim=-1).requires_grad_(True)
    text = F.normalize(torch.randn(8, 5), dim=-1).requires_grad_(True)
    siglip_loss(image, text, *params())["loss"].backward()
    for g in (params.logit_scale.grad, params.logit_bias.grad, image.grad, text.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    # at b = -10 nearly every pair (56 negatives, 8 positives) is predicted negative, so raising b
    # helps the 8 positives (loss ~ -b each) more than it hurts the negatives: dL/db < 0
    assert params.logit_bias.grad.item() < 0


def _siglip_shard(rank, world, image, text, t, b):
    per = image.shape[0] // world
    img = image[rank * per : (rank + 1) * per].clone().requires_grad_(True)
    txt = text[rank * per : (rank + 1) * per].clone().requires_grad_(True)
    scale = t.clone().requires_grad_(True)
    bias = b.clone().requires_grad_(True)
    loss = siglip_loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale, bias)["loss"]
    loss.backward()
    return {
        "loss": loss.detach(),
        "image_grad": img.grad,
        "text_grad": txt.grad,
        "t_grad": scale.grad,
        "b_grad": bias.grad,
    }


@pytest.mark.distributed
def test_distributed_siglip_loss_equals_global_batch():
    world, n, d = 2, 8, 6
    image, text = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    t, b = torch.tensor(4.0, dtype=torch.float64), torch.tensor(-1.5, dtype=torch.float64)
    results = run_distributed(_siglip_shard, world, image, text, t, b)

    img, txt = image.clone().requires_grad_(True), text.clone().requires_grad_(True)
    scale, bias = t.clone().requires_grad_(True), b.clone().requires_grad_(True)
    reference = siglip_loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale, bias)["loss"]
    reference.backward()

    # DDP averages over ranks: the mean of the local losses is the global loss; each rank's input
    # gradient (texts: summed over every rank's loss through the gather) divided by world is the global
    # one, and the replicated t and b get the mean of the ranks' gradients.
    assert torch.allclose(torch.stack([r["loss"] for r in results]).mean(), reference, atol=1e-12)
    assert torch.allclose(torch.cat([r["image_grad"] for r in results]) / world, img.grad, atol=1e-12)
    assert torch.allclose(torch.cat([r["text_grad"] for r in results]) / world, txt.grad, atol=1e-12)
    assert torch.allclose(torch.stack([r["t_grad"] for r in results]).mean(), scale.grad, atol=1e-12)
    assert torch.allclose(torch.stack([r["b_grad"] for r in results]).mean(), bias.grad, atol=1e-12)
