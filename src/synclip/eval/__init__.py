"""Evaluation as the papers do it: zero-shot with prompt ensembles, text-image and image-image
retrieval (Recall@k, mAP), linear probes and kNN on frozen features, end-to-end fine-tuning, exact
chance levels."""

from synclip.data.templates import TEMPLATE_SETS, get_templates, resolve_templates
from synclip.eval.features import encode_images, encode_texts
from synclip.eval.finetune import finetune
from synclip.eval.knn import knn_classify
from synclip.eval.linear_probe import linear_probe
from synclip.eval.metrics import (
    classification_chance,
    classification_metrics,
    image_retrieval_chance,
    image_retrieval_metrics,
    retrieval_chance,
    retrieval_metrics,
)
from synclip.eval.run import evaluate, format_table, write_eval_json
from synclip.eval.task import EvalInputs, EvalTask
from synclip.eval.zero_shot import build_classifier, zero_shot_logits
from synclip.registry import EVAL_TASKS

__all__ = [
    "EVAL_TASKS",
    "EvalInputs",
    "EvalTask",
    "TEMPLATE_SETS",
    "build_classifier",
    "classification_chance",
    "classification_metrics",
    "encode_images",
    "encode_texts",
    "evaluate",
    "finetune",
    "format_table",
    "get_templates",
    "image_retrieval_chance",
    "image_retrieval_metrics",
    "knn_classify",
    "linear_probe",
    "resolve_templates",
    "retrieval_chance",
    "retrieval_metrics",
    "write_eval_json",
    "zero_shot_logits",
]
