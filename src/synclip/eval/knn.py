"""Weighted k-nearest-neighbour classification on frozen features, as DINO evaluates (Caron et al. 2021).

Features are L2-normalised and compared by cosine similarity. Each test image takes its ``k`` most
similar training images; neighbour j votes for its class with weight ``exp(sim_j / T)`` (``T = 0.07``,
``k = 20``, DINO's ``eval_knn.py`` defaults). The summed votes per class are the (N, C) logits scored by
:func:`synclip.eval.metrics.classification_metrics` (classes no neighbour voted for score 0, so top-5
among them is an arbitrary but fixed order).
"""

from __future__ import annotations

import torch

from synclip.eval.linear_probe import as_labels, unit_features
from synclip.eval.metrics import classification_metrics


@torch.no_grad()
def knn_votes(
    train_x,
    train_y,
    test_x,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """(N_test, C) summed ``exp(sim / T)`` of each test row's ``k`` nearest training rows, per class."""
    train_x, test_x, train_y = unit_features(train_x), unit_features(test_x), as_labels(train_y)
    k = min(k, len(train_x))
    votes = []
    for start in range(0, len(test_x), chunk):  # bounds the (chunk, N_train) similarity matrix
        sim = test_x[start : start + chunk] @ train_x.T  # (b, N_train) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)  # (b, k)
        weights = (top_sim / temperature).exp()  # (b, k)
        out = torch.zeros(len(sim), num_classes)  # (b, C)
        votes.append(out.scatter_add_(1, train_y[top_idx], weights))  # train_y[top_idx]: (b, k)
    return torch.cat(votes)  # (N_test, C)


def knn_classify(
    train_x,
    train_y,
    test_x,
    test_y,
    num_classes: int | None = None,
    k: int = 20,
    temperature: float = 0.07,
) -> dict:
    """Weighted kNN; returns ``{"metrics", "chosen": {"k", "temperature"}, "settings"}``."""
    train_y, test_y = as_labels(train_y), as_labels(test_y)
    c = num_classes if num_classes is not None else int(max(train_y.max(), test_y.max())) + 1
    votes = knn_votes(train_x, train_y, test_x, c, k, temperature)  # (N_test, C)
    k_used = min(k, len(train_y))
    return {
        "metrics": classification_metrics(votes, test_y),
        "chosen": {"k": k_used, "temperature": temperature},
        "settings": {"protocol": "knn", "k": k, "temperature": temperature, "n_train": len(train_y)},
    }
