"""Evaluation as the papers do it: zero-shot with prompt ensembles, retrieval Recall@k, chance levels."""

from synclip.eval.metrics import classification_metrics, retrieval_metrics
from synclip.eval.zero_shot import build_classifier, zero_shot_logits

__all__ = ["build_classifier", "classification_metrics", "retrieval_metrics", "zero_shot_logits"]
