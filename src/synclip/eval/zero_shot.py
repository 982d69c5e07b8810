"""Zero-shot classification with prompt ensembles (Radford et al. 2021, Sec. 3.1.4).

The classifier follows CLIP_benchmark's ``zero_shot_classifier``: for each class, fill in every
template, encode, L2-normalise each template embedding, average over templates, renormalise; stack
the classes into a (D, C) matrix. Logits are ``100 * normalize(image) @ W`` (100 = CLIP's trained
logit scale, as CLIP_benchmark uses it); the scale changes no ranking, only the softmax temperature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from synclip.eval.features import encode_texts

LOGIT_SCALE = 100.0


def fill(template: str, class_name: str) -> str:
    """Fill a template's ``{}`` or ``{c}`` placeholder (CLIP uses ``{}``, CLIP_benchmark ``{c}``)."""
    if "{}" not in template and "{c}" not in template:
        raise ValueError(f"template {template!r} has no '{{}}' or '{{c}}' placeholder")
    return template.replace("{c}", class_name).replace("{}", class_name)


def build_classifier(
    model,
    tokenizer: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """Prompt-ensemble zero-shot weights: (D, C), each column unit length, float32 on the CPU."""
    if not class_names or not templates:
        raise ValueError("need at least one class name and one template")
    texts = [fill(t, c) for c in class_names for t in templates]  # class-major: C * T strings
    features = encode_texts(model, tokenizer, texts, device, batch_size)  # (C * T, D), each unit length
    features = features.reshape(len(class_names), len(templates), -1)  # (C, T, D)
    classes = F.normalize(features.mean(dim=1), dim=-1)  # (C, D)
    return classes.T.contiguous()  # (D, C)


def zero_shot_logits(image_features: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """(N, D) image features, (D, C) classifier -> (N, C) logits = 100 * cosine similarity."""
    return LOGIT_SCALE * F.normalize(image_features.float(), dim=-1) @ classifier.float()


def sigmoid_report(
    logits: torch.Tensor, labels: torch.Tensor, class_names: list[str], logit_scale: float, logit_bias: float
) -> dict:
    """SigLIP's per-class probabilities (Zhai et al. 2023, https://arxiv.org/abs/2303.15343).

    ``logits`` (N, C) are :func:`zero_shot_logits` (100 * cosine); each image-class pair is scored
    independently as ``sigmoid(t * cos + b)`` with the model's own temperature t and bias b. Returns the
    mean probability of the true class, the mean probability of the other classes, and per class the
    mean probability its own images get.
    """
    cos = logits.float() / LOGIT_SCALE  # (N, C)
    probs = torch.sigmoid(logit_scale * cos + logit_bias)  # (N, C), independent per pair
    own = probs.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
    others = (probs.sum(1) - own) / max(probs.shape[1] - 1, 1)  # (N,)
    per_class = {
        name: round(float(own[labels == c].mean()), 6)
        for c, name in enumerate(class_names)
        if (labels == c).any()
    }
    return {
        "true_class_mean": float(own.mean()),
        "other_classes_mean": float(others.mean()),
        "per_class": per_class,
        "logit_scale": float(logit_scale),
        "logit_bias": float(logit_bias),
    }
