"""Classification and retrieval metrics, and the exact chance level of each.

Classification follows CLIP_benchmark (LAION-AI, ``zeroshot_classification.py``): top-1, top-5
(``None`` with fewer than 5 classes, where CLIP_benchmark reports NaN) and mean per-class recall
(sklearn's balanced accuracy: the recall of each class present in ``labels``, averaged).

Retrieval follows the CLIP paper (Radford et al. 2021, Table 13) as CLIP_benchmark implements it
(``zeroshot_retrieval.py``): a query is a hit at k when *at least one* of its positives is among its
top k, so several captions per image and several images per caption are both handled.

Image-to-image retrieval (a query image ranks a gallery of images, as in instance-retrieval
benchmarks such as GPR1200, which MOFI reports; Wu et al. 2023, https://arxiv.org/abs/2306.07952)
reports the same Recall@k and mean average precision: a query's AP is the mean, over its positives,
of the precision at each positive's rank; mAP averages AP over the queries.

Chance levels are the expected metric of a model that ranks uniformly at random: k/C for top-k,
1/C for mean per-class recall, for Recall@k the hypergeometric ``1 - C(n - p, k) / C(n, k)``
(n candidates, p of them positive), and for AP ``(H_n + (p - 1) / (n - 1) * (n - H_n)) / n``
(H_n the n-th harmonic number; see :func:`chance_average_precision`), each averaged over the queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

KS = (1, 5, 10)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """``logits`` (N, C), ``labels`` (N,) ints in [0, C) -> fractions in [0, 1]."""
    logits, labels = logits.detach().float().cpu(), torch.as_tensor(labels).long().cpu()
    n, c = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"{n} rows of logits but labels of shape {tuple(labels.shape)}")
    top = logits.topk(min(5, c), dim=1).indices  # (N, min(5, C))
    hits = top == labels[:, None]  # (N, min(5, C)): at most one True per row
    top1 = hits[:, 0].float()  # (N,)
    recalls = [top1[labels == k].mean().item() for k in labels.unique().tolist()]
    return {
        "top1": top1.mean().item(),
        "top5": hits.any(dim=1).float().mean().item() if c >= 5 else None,
        "mean_per_class_recall": sum(recalls) / len(recalls),
    }


def _hit_rate(scores: torch.Tensor, positives: torch.Tensor, k: int) -> float:
    """Fraction of query rows with at least one positive column among their top-k scores."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices  # (Q, k)
    return positives.gather(1, top).any(dim=1).float().mean().item()


def retrieval_metrics(
    scores: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = KS
) -> dict[str, float]:
    """Recall@k both ways, the CLIP-paper "at least one positive in the top k" convention.

    ``scores`` (T, I): similarity of every text to every image. ``positives`` (T, I) bool: which
    pairs match. Every text and every image needs at least one positive.
    """
    scores, positives = scores.detach().float().cpu(), positives.bool().cpu()
    if scores.shape != positives.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and positives {tuple(positives.shape)} differ")
    if not (positives.any(dim=1).all() and positives.any(dim=0).all()):
        raise ValueError("every text and every image needs at least one positive")
    out = {f"text_to_image_R@{k}": _hit_rate(scores, positives, k) for k in ks}  # rows: texts
    out.update({f"image_to_text_R@{k}": _hit_rate(scores.T, positives.T, k) for k in ks})  # rows: images
    return out


def chance_top_k(k: int, num_classes: int) -> float:
    """P(true class among k of ``num_classes`` classes drawn at random) = min(k, C) / C."""
    return min(k, num_classes) / num_classes


def chance_mean_per_class_recall(num_classes: int) -> float:
    """Each class's recall under a random top-1 is 1/C in expectation, so is their mean."""
    return 1.0 / num_classes


def chance_recall_at_k(n: int, p: int, k: int) -> float:
    """P(a random ranking of ``n`` candidates puts at least one of ``p`` positives in its top ``k``).

    ``1 - C(n - p, k) / C(n, k)``, with the ratio computed as a product to stay in floating point.
    """
    k = min(k, n)
    miss = 1.0  # P(all top-k are negatives) = prod_{j<k} (n - p - j) / (n - j)
    for j in range(k):
        miss *= max(n - p - j, 0) / (n - j)
    return 1.0 - miss


def classification_chance(num_classes: int) -> dict[str, float | None]:
    """Chance level of each :func:`classification_metrics` key for a C-way task."""
    return {
        "top1": chance_top_k(1, num_classes),
        "top5": chance_top_k(5, num_classes) if num_classes >= 5 else None,
        "mean_per_class_recall": chance_mean_per_class_recall(num_classes),
    }


def retrieval_chance(positives: torch.Tensor, ks: Sequence[int] = KS) -> dict[str, float]:
    """Chance level of each :func:`retrieval_metrics` key: exact expected Recall@k, query-averaged."""
    positives = positives.bool().cpu()
    t, i = positives.shape
    per_text = positives.sum(dim=1).tolist()  # (T,) positives of each text query
    per_image = positives.sum(dim=0).tolist()  # (I,) positives of each image query
    out = {f"text_to_image_R@{k}": sum(chance_recall_at_k(i, p, k) for p in per_text) / t for k in ks}
    out.update({f"image_to_text_R@{k}": sum(chance_recall_at_k(t, p, k) for p in per_image) / i for k in ks})
    return out


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """AP of every query row: the mean, over its positive columns, of the precision at their ranks.

    ``scores`` (Q, G), ``positives`` (Q, G) bool; every row needs a positive. Ties keep column order.
    Returns (Q,) float32.
    """
    order = scores.argsort(dim=1, descending=True, stable=True)  # (Q, G) columns, best first
    hits = positives.gather(1, order).float()  # (Q, G) 1 where rank r holds a positive
    ranks = torch.arange(1, scores.shape[1] + 1, dtype=torch.float32)  # (G,)
    precision = hits.cumsum(dim=1) / ranks  # (Q, G) precision at each rank
    return (precision * hits).sum(dim=1) / hits.sum(dim=1)


def image_retrieval_metrics(
    scores: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = KS
) -> dict[str, float]:
    """Recall@k ("at least one positive in the top k") and mAP of query images over a gallery.

    ``scores`` (Q, G): similarity of every query image to every gallery image. ``positives`` (Q, G)
    bool. Every query needs a positive; gallery images without one are distractors.
    """
    scores, positives = scores.detach().float().cpu(), positives.bool().cpu()
    if scores.shape != positives.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and positives {tuple(positives.shape)} differ")
    if not positives.any(dim=1).all():
        raise ValueError("every query image needs at least one positive in the gallery")
    out = {f"image_to_image_R@{k}": _hit_rate(scores, positives, k) for k in ks}
    out["mAP"] = average_precision(scores, positives).mean().item()
    return out


def chance_average_precision(n: int, p: int) -> float:
    """Expected AP of a uniformly random ranking of ``n`` candidates, ``p`` of them positive.

    A positive lands at rank r with probability 1/n, and the other p - 1 positives fill
    (p - 1)(r - 1)/(n - 1) of the r - 1 ranks above it in expectation, so its expected precision is
    (1 + (p - 1)(r - 1)/(n - 1)) / r; averaging over r gives ``(H_n + (p - 1)/(n - 1) (n - H_n)) / n``.
    """
    if not 1 <= p <= n:
        raise ValueError(f"need 1 <= p <= n, got n={n}, p={p}")
    if n == 1:
        return 1.0
    harmonic = sum(1.0 / r for r in range(1, n + 1))
    return (harmonic + (p - 1) / (n - 1) * (n - harmonic)) / n


def image_retrieval_chance(positives: torch.Tensor, ks: Sequence[int] = KS) -> dict[str, float]:
    """Chance level of each :func:`image_retrieval_metrics` key, averaged over the queries."""
    positives = positives.bool().cpu()
    q, g = positives.shape
    per_query = positives.sum(dim=1).tolist()  # (Q,) positives of each query
    out = {f"image_to_image_R@{k}": sum(chance_recall_at_k(g, p, k) for p in per_query) / q for k in ks}
    out["mAP"] = sum(chance_average_precision(g, p) for p in per_query) / q
    return out
