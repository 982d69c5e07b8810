"""Zero-shot classification with prompt ensembles (Radford et al. 2021, Sec. 3.1.4).

For each class every template is filled in and encoded; each template embedding is L2-normalised,
the class embedding is their mean, renormalised. Logits are 100 x cosine, as in CLIP_benchmark.
"""

from __future__ import annotations

import torch

from synclip.eval.features import encode_texts


def fill(template: str, class_name: str) -> str:
    return template.replace("{c}", class_name).replace("{}", class_name)


def build_classifier(model, tokenizer, class_names, templates, device, batch_size: int = 256) -> torch.Tensor:
    """Returns the (D, C) zero-shot classifier."""
    texts = [fill(t, c) for c in class_names for t in templates]
    features = encode_texts(model, tokenizer, texts, device, batch_size)  # (C * T, D), unit length
    features = features.reshape(len(class_names), len(templates), -1)  # (C, T, D)
    classes = features.mean(dim=1)  # (C, D)
    classes = classes / classes.norm(dim=-1, keepdim=True)
    return classes.T  # (D, C)


def zero_shot_logits(image_features: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """(N, D) unit image features @ (D, C) classifier -> (N, C) logits."""
    return 100.0 * image_features @ classifier
