"""Evaluation tasks on the emoji corpus and the Fashion-MNIST transfer task.

What the captions can teach decides what a task can show. The CLDR names never contain the
top-level category names ("people & body"), so category zero-shot is expected at chance after
image-text training; ``head_noun`` asks for nouns the names do use; retrieval across art styles
(captions vs OpenMoji images, after training on Twemoji) measures transfer.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import torch
from PIL import Image

# Nouns that occur as whole words in at least 5 Twemoji captions (checked in tests/eval).
HEAD_NOUNS = [
    "heart", "hand", "face", "button", "baby", "ball", "water", "arrow", "mountain", "boat", "clock",
    "moon", "cat", "flag", "horse", "star", "dog", "book", "car", "tree", "sun", "monkey",
]  # fmt: skip

# Fashion-MNIST classes in the emoji names' vocabulary where the names have a word for them.
FASHION_CLASS_NAMES = [
    "t-shirt", "jeans", "pullover", "dress", "coat", "sandal", "shirt", "running shoe", "handbag", "boot",
]  # fmt: skip


def read_rows(corpus: Path, style: str, limit: int | None = None) -> list[dict]:
    with open(corpus / f"{style}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return rows[:limit] if limit else rows


def load_images(corpus: Path, rows: list[dict]) -> list[Image.Image]:
    images = []
    for row in rows:
        with Image.open(corpus / row["filepath"]) as im:
            images.append(im.convert("RGB"))
    return images


def category_name(text: str) -> str:
    """'People & Body' -> 'people and body'."""
    return text.replace("&", "and").replace("-", " ").lower().strip()


def label_task(rows: list[dict], field: str) -> tuple[list[int], list[int], list[str]]:
    """(row indices with a value, their labels, class names) for a categorical column."""
    names = sorted({category_name(r[field]) for r in rows if r[field].strip()})
    index = {n: i for i, n in enumerate(names)}
    keep = [i for i, r in enumerate(rows) if r[field].strip()]
    return keep, [index[category_name(rows[i][field])] for i in keep], names


def head_noun_task(rows: list[dict], nouns: list[str] = HEAD_NOUNS) -> tuple[list[int], list[int], list[str]]:
    """Rows whose caption contains exactly one of ``nouns`` as a whole word, labelled by that noun."""
    keep, labels = [], []
    for i, row in enumerate(rows):
        words = set(re.findall(r"[a-z]+", row["caption"].lower()))
        found = [k for k, noun in enumerate(nouns) if noun in words]
        if len(found) == 1:
            keep.append(i)
            labels.append(found[0])
    return keep, labels, list(nouns)


def caption_positives(rows: list[dict]) -> tuple[list[str], torch.Tensor]:
    """Unique captions and the (T, I) bool matrix of which images carry each caption."""
    captions = sorted({r["caption"] for r in rows})
    index = {c: t for t, c in enumerate(captions)}
    positives = torch.zeros(len(captions), len(rows), dtype=torch.bool)
    for i, row in enumerate(rows):
        positives[index[row["caption"]], i] = True
    return captions, positives
