import math

import pytest
import torch
import torch.nn.functional as F

from synclip.losses import clip_loss


def naive_clip_loss(image, text, scale):
    """CLIP's symmetric cross-entropy written out per row (Radford et al. 2021, Fig. 3)."""
    n = image.shape[0]
    total = 0.0
    for i in range(n):
        sims_i = torch.stack([scale * image[i] @ text[j] for j in range(n)])
        sims_t = torch.stack([scale * text[i] @ image[j] for j in range(n)])
        total = total - torch.log_softmax(sims_i, 0)[i] - torch.log_softmax(sims_t, 0)[i]
    return total / (2 * n)


@pytest.mark.parametrize("n,d", [(2, 3), (7, 16), (32, 8)])
def test_clip_loss_matches_naive_reference(n, d):
    image = F.normalize(torch.randn(n, d), dim=-1)
    text = F.normalize(torch.randn(n, d), dim=-1)
    scale = torch.tensor(14.3)
    assert torch.allclose(
        clip_loss(image, text, scale)["loss"], naive_clip_loss(image, text, scale), atol=1e-5
    )


def test_uniform_logits_give_log_n():
    n = 10
    same = F.normalize(torch.ones(n, 4), dim=-1)  # every pair equally similar
    out = clip_loss(same, same, torch.tensor(50.0))
    assert out["loss"].item() == pytest.approx(math.log(n), rel=1e-6)


def test_clip_loss_is_symmetric_and_permutation_invariant():
    image, text = F.normalize(torch.randn(9, 5), dim=-1), F.normalize(torch.randn(9, 5), dim=-1)
    scale = torch.tensor(10.0)
    base = clip_loss(image, text, scale)["loss"]
    assert torch.allclose(base, clip_loss(text, image, scale)["loss"])
    perm = torch.randperm(9)
    assert torch.allclose(base, clip_loss(image[perm], text[perm], scale)["loss"], atol=1e-6)


def test_perfect_alignment_gives_low_loss_and_full_accuracy():
    x = F.normalize(torch.eye(6), dim=-1)
    out = clip_loss(x, x, torch.tensor(100.0))
    assert out["loss"].item() < 1e-6
    assert out["acc"].item() == 1.0
