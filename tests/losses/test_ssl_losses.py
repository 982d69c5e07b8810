"""SimCLR, SimSiam, MLM, multi-view CLIP and nCLIP losses against naive references from the papers."""

import math

import torch
import torch.nn.functional as F

from synclip.losses import (
    clip_loss,
    entropy,
    masked_token_ce,
    multiview_clip_loss,
    nclip_loss,
    ntxent_loss,
    simsiam_loss,
)


def _naive_ntxent(a, b, tau):
    """SimCLR's eq. 1 over the 2N views: l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t)."""
    z = torch.cat([a, b])  # (2N, D), rows 0..N-1 view a, N..2N-1 view b
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = i + n if i < n else i - n
        sims = [z[i] @ z[k] / tau for k in range(2 * n) if k != i]
        total = total - (z[i] @ z[j] / tau - torch.logsumexp(torch.stack(sims), 0))
    return total / (2 * n)


def test_ntxent_matches_simclr_equation():
    a, b = F.normalize(torch.randn(6, 5), dim=-1), F.normalize(torch.randn(6, 5), dim=-1)
    out = ntxent_loss(a, b, temperature=0.1)
    assert torch.allclose(out["loss"], _naive_ntxent(a, b, 0.1), atol=1e-5)


def test_ntxent_identical_views_far_apart_is_near_zero():
    a = torch.eye(4)  # orthogonal samples, both views equal
    out = ntxent_loss(a, a.clone(), temperature=0.05)
    assert out["loss"] < 1e-6 and out["acc"] == 1


def test_simsiam_negative_cosine_and_stop_gradient():
    p1, p2, z1, z2 = (torch.randn(5, 4, requires_grad=True) for _ in range(4))
    loss = simsiam_loss(p1, p2, z1, z2)
    naive = (
        -sum(F.cosine_similarity(p1[i], z2[i], 0) + F.cosine_similarity(p2[i], z1[i], 0) for i in range(5))
        / 10
    )
    assert torch.allclose(loss, naive, atol=1e-6)
    loss.backward()
    assert z1.grad is None and z2.grad is None and p1.grad is not None
    same = torch.randn(5, 4)
    assert torch.allclose(simsiam_loss(same, same, same, same), torch.tensor(-1.0))  # identical: -1


def test_masked_ce_only_counts_labelled_positions():
    logits = torch.randn(7, 11)
    labels = torch.tensor([-100, 3, -100, 5, 0, -100, -100])
    out = masked_token_ce(logits, labels)
    naive = -sum(torch.log_softmax(logits[i], 0)[labels[i]] for i in (1, 3, 4)) / 3
    assert torch.allclose(out["loss"], naive, atol=1e-6)
    empty = masked_token_ce(logits.requires_grad_(True), torch.full((7,), -100))
    assert empty["loss"] == 0
    empty["loss"].backward()  # still differentiable


def test_multiview_clip_is_the_mean_of_the_pairwise_clip_losses():
    imgs = F.normalize(torch.randn(6, 2, 8), dim=-1)
    t1, t2 = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    out = multiview_clip_loss(imgs, [t1, t2], scale)
    pairs = [clip_loss(imgs[:, v], t, scale)["loss"] for v in range(2) for t in (t1, t2)]
    assert torch.allclose(out["loss"], torch.stack(pairs).mean())


def _naive_nclip(li, lt, tau, sharp_w, smooth_w):
    p_i, p_t = torch.softmax(li / tau, -1), torch.softmax(lt / tau, -1)
    n = li.shape[0]
    ce = sum(-(p_t[b] * p_i[b].log()).sum() - (p_i[b] * p_t[b].log()).sum() for b in range(n)) / (2 * n)
    h = lambda p: -(p * p.log()).sum()  # noqa: E731
    sharp = sum(h(p_i[b]) + h(p_t[b]) for b in range(n)) / (2 * n)
    smooth = -(h(p_i.mean(0)) + h(p_t.mean(0))) / 2
    return ce + sharp_w * sharp + smooth_w * smooth


def test_nclip_matches_naive_reference():
    li, lt = torch.randn(5, 7), torch.randn(5, 7)
    out = nclip_loss(li, lt, temperature=0.5, sharpness_weight=0.3, smoothness_weight=0.7)
    assert torch.allclose(out["loss"], _naive_nclip(li, lt, 0.5, 0.3, 0.7), atol=1e-5)


def test_nclip_closed_forms_uniform_and_one_hot():
    k, n = 16, 4
    uniform = nclip_loss(torch.zeros(n, k), torch.zeros(n, k))
    log_k = math.log(k)
    assert math.isclose(uniform["ce"].item(), log_k, rel_tol=1e-5)
    assert math.isclose(uniform["sharpness"].item(), log_k, rel_tol=1e-5)
    assert math.isclose(uniform["smoothness"].item(), -log_k, rel_tol=1e-5)
    assert math.isclose(uniform["loss"].item(), log_k, rel_tol=1e-5)  # log K + log K - log K

    one_hot = F.one_hot(torch.arange(n), k).float() * 100  # distinct, confident, matching prototypes
    spread = nclip_loss(one_hot, one_hot, temperature=1.0)
    assert spread["ce"] < 1e-6 and spread["sharpness"] < 1e-6
    assert math.isclose(spread["batch_entropy"].item(), math.log(n), rel_tol=1e-5)  # mean is uniform over n
    assert spread["usage"] == 1

    collapsed = F.one_hot(torch.zeros(n, dtype=torch.long), k).float() * 100  # everyone on prototype 0
    out = nclip_loss(collapsed, collapsed, temperature=1.0)
    assert out["batch_entropy"] < 1e-6 and out["usage"] == 1 / n
    assert out["loss"] > spread["loss"] + math.log(n) - 1e-4  # smoothness penalises the collapse


def test_nclip_target_temperature_and_stop_grad():
    li, lt = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    out = nclip_loss(
        li,
        lt,
        temperature=0.1,
        target_temperature=0.04,
        stop_grad_target=True,
        sharpness_weight=0.0,
        smoothness_weight=0.0,
    )
    q_t = torch.softmax(lt.detach() / 0.04, -1)
    q_i = torch.softmax(li.detach() / 0.04, -1)
    naive = (
        -(q_t * torch.log_softmax(li / 0.1, -1)).sum(-1).mean()
        - (q_i * torch.log_softmax(lt / 0.1, -1)).sum(-1).mean()
    ) / 2
    assert torch.allclose(out["loss"], naive, atol=1e-5)


def test_entropy_closed_forms():
    assert math.isclose(entropy(torch.full((8,), 1 / 8)).item(), math.log(8), rel_tol=1e-6)
    assert entropy(F.one_hot(torch.tensor(3), 8).float()).item() == 0
