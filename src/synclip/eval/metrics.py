"""Metrics and their chance levels.

Classification follows CLIP_benchmark: top-1, top-5 (None with fewer than 5 classes) and mean
per-class recall (balanced accuracy). Retrieval follows the CLIP paper's convention as CLIP_benchmark
implements it: a query is a hit at k when at least one of its positives is among its top k.
"""

from __future__ import annotations

import math

import torch


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """``logits`` (N, C), ``labels`` (N,) -> fractions in [0, 1]."""
    n, c = logits.shape
    top = logits.topk(min(5, c), dim=1).indices  # (N, k)
    hit = top == labels[:, None]  # (N, k)
    recalls = [hit[labels == k, 0].float().mean().item() for k in range(c) if (labels == k).any()]
    return {
        "top1": hit[:, 0].float().mean().item(),
        "top5": hit.any(1).float().mean().item() if c >= 5 else None,
        "mean_per_class_recall": sum(recalls) / len(recalls),
    }


def classification_chance(labels: torch.Tensor, num_classes: int) -> dict[str, float | None]:
    """Expected metrics of a classifier that ranks classes uniformly at random."""
    return {
        "top1": 1 / num_classes,
        "top5": min(5, num_classes) / num_classes if num_classes >= 5 else None,
        "mean_per_class_recall": 1 / num_classes,
    }


def _recall_at_k(scores: torch.Tensor, positives: torch.Tensor, k: int) -> float:
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices  # (Q, k)
    return positives.gather(1, top).any(1).float().mean().item()


def retrieval_metrics(scores: torch.Tensor, positives: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """``scores`` (T, I) text-image similarities; ``positives`` (T, I) bool, each text and image has >= 1."""
    out = {}
    for k in ks:
        out[f"text_to_image_R@{k}"] = _recall_at_k(scores, positives, k)
    for k in ks:
        out[f"image_to_text_R@{k}"] = _recall_at_k(scores.T, positives.T, k)
    return out


def _chance_hit(n: int, p: int, k: int) -> float:
    """Probability that a random ranking of n items puts at least one of p positives in the top k."""
    k = min(k, n)
    if n - p < k:
        return 1.0
    return 1.0 - math.comb(n - p, k) / math.comb(n, k)


def retrieval_chance(positives: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Exact expected Recall@k of random rankings, averaged over the queries of each direction."""
    t, i = positives.shape
    per_text = positives.sum(1).tolist()
    per_image = positives.sum(0).tolist()
    out = {}
    for k in ks:
        out[f"text_to_image_R@{k}"] = sum(_chance_hit(i, p, k) for p in per_text) / t
    for k in ks:
        out[f"image_to_text_R@{k}"] = sum(_chance_hit(t, p, k) for p in per_image) / i
    return out
