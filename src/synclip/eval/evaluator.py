"""The evaluation runner's model wrapper: encodes each image collection once and scores every task kind.

:class:`Evaluator` keeps image features per collection (in memory, and on disk with a feature cache),
text features per caption list and zero-shot classifiers per (classes, templates), and scores each
kind of task item (:mod:`synclip.eval.task_data`) into its result entry for ``eval.json``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from synclip.data.templates import resolve_templates
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
from synclip.eval.task_data import Classification, ImageRetrieval, Probe, Retrieval
from synclip.eval.zero_shot import build_classifier, sigmoid_report, zero_shot_logits
from synclip.io import atomic_write


class Evaluator:
    """A model with caches: image features per image set, text features per text list, classifiers.

    With ``feature_cache`` (a folder that belongs to one checkpoint), image features are also kept on
    disk, one file per (image set, number of images, preprocessing), so evaluating the same checkpoint
    again, with other tasks or templates, encodes nothing twice. ``templates`` (a set name or file),
    when given, replaces every zero-shot task's own template set.
    """

    def __init__(
        self,
        model,
        preprocess,
        tokenizer,
        device="cpu",
        batch_size: int = 256,
        feature_cache: str | Path | None = None,
        templates: str | None = None,
    ):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.device, self.batch_size, self.templates = device, batch_size, templates
        self.feature_cache = Path(feature_cache) if feature_cache is not None else None
        self._images: dict[str, torch.Tensor] = {}
        self._texts: dict[tuple[str, ...], torch.Tensor] = {}
        self._classifiers: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}

    def image_features(self, image_set: str, images: Sequence) -> torch.Tensor:
        if image_set not in self._images:  # (I, D)
            path = self._cache_path(image_set, len(images))
            if path is not None and path.is_file():
                self._images[image_set] = torch.load(path, weights_only=True)
            else:
                features = encode_images(self.model, images, self.preprocess, self.device, self.batch_size)
                if path is not None:
                    atomic_write(path, lambda f, features=features: torch.save(features, f))
                self._images[image_set] = features
        return self._images[image_set]

    def _cache_path(self, image_set: str, n: int) -> Path | None:
        if self.feature_cache is None:
            return None
        # "rgb-on-white": images read by load_rgb (transparency on white), unlike caches of before
        key = hashlib.sha256(f"{image_set}|{n}|{self.preprocess!r}|rgb-on-white".encode()).hexdigest()[:24]
        return self.feature_cache / f"{key}.pt"

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        key = tuple(texts)
        if key not in self._texts:  # (T, D)
            self._texts[key] = encode_texts(self.model, self.tokenizer, key, self.device, self.batch_size)
        return self._texts[key]

    def classifier(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        key = (tuple(class_names), tuple(templates))
        if key not in self._classifiers:  # (D, C)
            self._classifiers[key] = build_classifier(
                self.model, self.tokenizer, class_names, templates, self.device, self.batch_size
            )
        return self._classifiers[key]

    def zero_shot_logits(self, task: Classification) -> torch.Tensor:
        """(N, C) prompt-ensemble logits of the task's images."""
        features = self.image_features(task.image_set, task.images)[task.index]  # (N, D)
        return zero_shot_logits(features, self.classifier(task.class_names, self._templates(task)[1]))

    def _templates(self, task: Classification) -> tuple[str, list[str]]:
        """(set name, templates) of a zero-shot task: the evaluation's own set if given, else the task's."""
        return resolve_templates(self.templates if self.templates is not None else task.templates)

    def retrieval_scores(self, task: Retrieval) -> torch.Tensor:
        """(T, I) cosine similarity of every caption to every image."""
        images = self.image_features(task.image_set, task.images)  # (I, D)
        return self.text_features(task.captions) @ images.T  # (T, I)

    def image_retrieval_scores(self, task: ImageRetrieval) -> torch.Tensor:
        """(Q, G) cosine similarity of every query image to every gallery image."""
        queries = self.image_features(task.query_set, task.query_images)[task.query_index]  # (Q, D)
        gallery = self.image_features(task.gallery_set, task.gallery_images)  # (G, D)
        return queries @ gallery.T  # (Q, G)

    def zero_shot(self, task: Classification) -> dict:
        template_set, templates = self._templates(task)
        logits = self.zero_shot_logits(task)  # (N, C)
        return {
            "kind": "zero_shot",
            "metrics": classification_metrics(logits, torch.tensor(task.labels)),
            "chance": classification_chance(len(task.class_names)),
            "templates": {"set": template_set, "templates": templates},
            "classes": list(task.class_names),
            # top-1 of always answering the most frequent class: read top-1 on imbalanced tasks against it
            "data": {**task.data, "majority_top1": max(Counter(task.labels).values()) / len(task.labels)},
            **self._sigmoid(logits, task),
        }

    def _sigmoid(self, logits: torch.Tensor, task: Classification) -> dict:
        """``{"sigmoid": per-class probabilities}`` for a model with a learned bias (SigLIP), else {}."""
        exported = getattr(self.model, "exported", None) or {}
        if "logit_bias" not in exported:
            return {}
        scale = float(torch.as_tensor(exported["logit_scale"]).exp())
        bias = float(exported["logit_bias"])
        return {
            "sigmoid": sigmoid_report(logits, torch.tensor(task.labels), list(task.class_names), scale, bias)
        }

    def retrieval(self, task: Retrieval) -> dict:
        return {
            "kind": "retrieval",
            "metrics": retrieval_metrics(self.retrieval_scores(task), task.positives),
            "chance": retrieval_chance(task.positives),
            "templates": None,  # captions are used as written
            "data": task.data,
        }

    def image_retrieval(self, task: ImageRetrieval) -> dict:
        return {
            "kind": "image_retrieval",
            "metrics": image_retrieval_metrics(self.image_retrieval_scores(task), task.positives),
            "chance": image_retrieval_chance(task.positives),
            "templates": None,  # no text
            "data": task.data,
        }

    def probe(self, task: Probe) -> dict:
        train = self.image_features(task.train_set, task.train_images)  # (N_train, D)
        test = self.image_features(task.test_set, task.test_images)  # (N_test, D)
        if task.train_index is not None:
            train = train[task.train_index]
        if task.test_index is not None:
            test = test[task.test_index]
        c = len(task.class_names)
        if task.protocol == "knn":
            out = knn_classify(train, task.train_labels, test, task.test_labels, c, **task.options)
        else:
            out = linear_probe(
                train, task.train_labels, test, task.test_labels, c, protocol=task.protocol, **task.options
            )
        return {
            "kind": "knn" if task.protocol == "knn" else "linear_probe",
            "metrics": out["metrics"],
            "chance": classification_chance(c),
            "templates": None,  # no prompts: a classifier fitted on image features
            "probe": {"chosen": out["chosen"], "settings": out["settings"], "sweep": out.get("sweep")},
            "classes": list(task.class_names),
            "data": {
                **task.data,
                "majority_top1": max(Counter(task.test_labels).values()) / len(task.test_labels),
            },
        }

    def finetune(self, task: Probe) -> dict:
        """End-to-end fine-tuning of a copy of the image tower with a linear head (synclip.eval.finetune)."""
        c = len(task.class_names)
        out = finetune(
            self.model,
            self.preprocess,
            task.train_images,
            task.train_labels,
            task.test_images,
            task.test_labels,
            c,
            device=self.device,
            **task.options,
        )
        return {
            "kind": "finetune",
            "metrics": out["metrics"],
            "chance": classification_chance(c),
            "templates": None,
            "finetune": {"settings": out["settings"], "history": out["history"]},
            "classes": list(task.class_names),
            "data": {
                **task.data,
                "majority_top1": max(Counter(task.test_labels).values()) / len(task.test_labels),
            },
        }
