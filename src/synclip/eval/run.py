"""Run named evaluation tasks on a model and report metrics beside their chance levels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from synclip.eval import emoji_tasks as et
from synclip.eval.features import encode_images, encode_texts
from synclip.eval.metrics import (
    classification_chance,
    classification_metrics,
    retrieval_chance,
    retrieval_metrics,
)
from synclip.eval.templates import get_templates
from synclip.eval.zero_shot import build_classifier, zero_shot_logits

STYLES = ("twemoji", "openmoji")


class Context:
    """A model plus caches, so each image set is encoded once per ``evaluate`` call."""

    def __init__(self, model, preprocess, tokenizer, device, batch_size, corpus_dir, limit):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.device, self.batch_size, self.limit = device, batch_size, limit
        self._corpus_dir = corpus_dir
        self._rows: dict[str, list[dict]] = {}
        self._features: dict[str, torch.Tensor] = {}

    @property
    def corpus(self) -> Path:
        if self._corpus_dir is None:
            from synclip.data.emoji import build_emoji_corpus

            self._corpus_dir = build_emoji_corpus()
        return Path(self._corpus_dir)

    def rows(self, style: str) -> list[dict]:
        if style not in self._rows:
            self._rows[style] = et.read_rows(self.corpus, style, self.limit)
        return self._rows[style]

    def image_features(self, style: str) -> torch.Tensor:
        if style not in self._features:
            images = et.load_images(self.corpus, self.rows(style))
            self._features[style] = encode_images(
                self.model, images, self.preprocess, self.device, self.batch_size
            )
        return self._features[style]

    def zero_shot(self, features, labels, class_names, template_set: str, data: dict) -> dict:
        templates = get_templates(template_set)
        classifier = build_classifier(
            self.model, self.tokenizer, class_names, templates, self.device, self.batch_size
        )
        labels = torch.tensor(labels)
        return {
            "kind": "zero_shot",
            "metrics": classification_metrics(zero_shot_logits(features, classifier), labels),
            "chance": classification_chance(labels, len(class_names)),
            "templates": {"set": template_set, "templates": templates},
            "classes": class_names,
            "data": {**data, "n": len(labels)},
        }

    def retrieval(self, image_features, rows, data: dict) -> dict:
        captions, positives = et.caption_positives(rows)
        text_features = encode_texts(self.model, self.tokenizer, captions, self.device, self.batch_size)
        return {
            "kind": "retrieval",
            "metrics": retrieval_metrics(text_features @ image_features.T, positives),
            "chance": retrieval_chance(positives),
            "data": {**data, "n_texts": len(captions), "n_images": len(rows)},
        }


def _emoji_label_task(field: str):
    def run(ctx: Context) -> dict:
        out = {}
        for style in STYLES:
            keep, labels, names = et.label_task(ctx.rows(style), field)
            data = {"source": str(ctx.corpus / f"{style}.tsv"), "field": field}
            out[f"{field}/{style}"] = ctx.zero_shot(
                ctx.image_features(style)[keep], labels, names, "emoji", data
            )
        return out

    return run


def task_head_noun(ctx: Context) -> dict:
    out = {}
    for style in STYLES:
        keep, labels, names = et.head_noun_task(ctx.rows(style))
        data = {"source": str(ctx.corpus / f"{style}.tsv"), "rule": "caption contains exactly one class noun"}
        out[f"head_noun/{style}"] = ctx.zero_shot(
            ctx.image_features(style)[keep], labels, names, "emoji", data
        )
    return out


def task_retrieval(ctx: Context) -> dict:
    data = {"source": str(ctx.corpus / "twemoji.tsv"), "texts": "unique captions", "images": "twemoji"}
    return {"retrieval/twemoji": ctx.retrieval(ctx.image_features("twemoji"), ctx.rows("twemoji"), data)}


def task_cross_style(ctx: Context) -> dict:
    data = {"source": str(ctx.corpus / "openmoji.tsv"), "texts": "unique captions", "images": "openmoji"}
    return {"retrieval/openmoji": ctx.retrieval(ctx.image_features("openmoji"), ctx.rows("openmoji"), data)}


def task_fashion_mnist(ctx: Context) -> dict:
    from synclip.data.labelled import fashion_mnist

    dataset = fashion_mnist("test")
    n = min(len(dataset), ctx.limit) if ctx.limit else len(dataset)
    samples = [dataset[i] for i in range(n)]
    features = encode_images(
        ctx.model, [s["image"] for s in samples], ctx.preprocess, ctx.device, ctx.batch_size
    )
    data = {"source": "Debian dataset-fashion-mnist, t10k", "dataset_classes": dataset.classes}
    return {
        "fashion_mnist": ctx.zero_shot(
            features, [s["label"] for s in samples], et.FASHION_CLASS_NAMES, "photo", data
        )
    }


TASKS = {
    "category": _emoji_label_task("category"),
    "subcategory": _emoji_label_task("subcategory"),
    "head_noun": task_head_noun,
    "retrieval": task_retrieval,
    "cross_style": task_cross_style,
    "fashion_mnist": task_fashion_mnist,
}


def available_tasks() -> list[str]:
    """Every task whose data is installed (Fashion-MNIST needs the Debian package)."""
    from synclip.data.labelled import FASHION_MNIST_DIR

    names = list(TASKS)
    if not Path(FASHION_MNIST_DIR).exists():
        names.remove("fashion_mnist")
    return names


def evaluate(
    model, preprocess, tokenizer, tasks=None, device="cpu", batch_size=256, corpus_dir=None, limit=None
) -> dict:
    """Run ``tasks`` (default: all available) -> ``{"tasks": {name: {...}}, "skipped": {...}}``."""
    names = tasks or available_tasks()
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; known: {', '.join(TASKS)}")
    ctx = Context(model, preprocess, tokenizer, device, batch_size, corpus_dir, limit)
    result = {"tasks": {}, "skipped": {}}
    for name in names:
        try:
            result["tasks"].update(TASKS[name](ctx))
        except FileNotFoundError as err:
            result["skipped"][name] = str(err)
    return result


def write_eval_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    return path


def _pct(x) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}" if x >= 0.01 else f"{100 * x:.3f}"


def format_table(result: dict, tasks: list[str] | None = None) -> str:
    """Markdown table: task | metric | value (%) | chance (%); ``tasks`` selects result keys."""
    lines = ["| task | metric | value (%) | chance (%) |", "|---|---|---|---|"]
    for task, entry in result["tasks"].items():
        if tasks and task not in tasks:
            continue
        for metric, value in entry["metrics"].items():
            if value is None:
                continue
            lines.append(f"| {task} | {metric} | {_pct(value)} | {_pct(entry['chance'].get(metric))} |")
    for task, reason in result.get("skipped", {}).items():
        lines.append(f"| {task} | skipped: {reason} | | |")
    return "\n".join(lines)
