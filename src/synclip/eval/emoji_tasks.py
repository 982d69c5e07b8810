"""Evaluation tasks on the emoji corpus (``synclip.data.build_emoji_corpus``).

What the captions (CLDR English names) can teach decides what a task can show:

- ``category`` / ``subcategory``: zero-shot over the emoji-test.txt groups ("people & body" ->
  "people and body"). These names never occur in the captions, so a CLIP trained on the captions is
  expected to stay near chance; the tasks are kept as a negative control.
- ``head_noun``: zero-shot over frequent nouns the captions do use (heart, hand, cat, clock, ...);
  an image is labelled with the one class noun its caption contains.
- ``retrieval``: unique captions <-> images, in the training style (Twemoji) or across styles
  (OpenMoji art, same captions): Recall@1/5/10 both ways, with every image of a caption positive.
- ``image_retrieval``: image -> image across styles, no text involved: a Twemoji image ranks the
  OpenMoji images, and the OpenMoji drawings of its caption are its positives (instance retrieval, as
  GPR1200 for MOFI). It measures the image tower alone.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

import torch

from synclip.eval.task_data import Classification, ImageFiles, ImageRetrieval, Retrieval

STYLES = ("twemoji", "openmoji")

# Class nouns of ``head_noun``. Fixed in code so that numbers stay comparable across corpus builds;
# tests/eval checks them against the corpus with :func:`head_noun_stats`: each labels at least
# MIN_CAPTIONS captions (after dropping captions with no or several class nouns) coming from at least
# MIN_NAMES distinct names once skin tones are stripped (so no class is one emoji in five skin tones).
HEAD_NOUNS = [
    "arrow", "baby", "ball", "boat", "button", "cat", "circle", "clock", "face", "fist", "flag",
    "hair", "hand", "heart", "islands", "keycap", "mark", "moon", "mountain", "sign", "square", "star",
    "water", "wheelchair",
]  # fmt: skip
MIN_CAPTIONS, MIN_NAMES = 8, 4

_WORD = re.compile(r"[a-z0-9]+")
_SKIN_TONE = re.compile(r"[,:]?\s*(?:medium-light|medium-dark|light|medium|dark) skin tone")


def words(caption: str) -> set[str]:
    """Lower-cased alphanumeric runs of a caption ("eight o’clock" -> {"eight", "o", "clock"})."""
    return set(_WORD.findall(caption.lower()))


def base_name(caption: str) -> str:
    """The caption without its skin-tone modifiers: variants of one emoji share it."""
    return " ".join(_SKIN_TONE.sub("", caption.lower()).replace(":", " ").split())


def read_rows(corpus: Path, style: str, limit: int | None = None) -> list[dict]:
    """Rows of ``<corpus>/<style>.tsv`` sorted by code points; with ``limit``, that many spread evenly.

    Sorting makes a limited subset the same emoji in both styles when they hold the same code points.
    """
    with open(Path(corpus) / f"{style}.tsv", newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f, delimiter="\t"), key=lambda row: row["codepoints"])
    if limit is None or limit >= len(rows):
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


def style_images(corpus: Path, rows: list[dict]) -> ImageFiles:
    """The images of ``rows``, read lazily (paths in the TSV are relative to its folder)."""
    return ImageFiles([Path(corpus) / row["filepath"] for row in rows])


def category_name(text: str) -> str:
    """A group name as a prompt spells it: 'People & Body' -> 'people and body'."""
    return " ".join(text.replace("&", "and").replace("-", " ").lower().split())


def label_task(corpus: Path, style: str, rows: list[dict], field: str) -> Classification:
    """Zero-shot over the distinct values of a categorical column (``category``/``subcategory``)."""
    index = [i for i, row in enumerate(rows) if row[field].strip()]  # a few rows have no group
    names = sorted({category_name(rows[i][field]) for i in index})
    position = {name: c for c, name in enumerate(names)}
    return Classification(
        image_set=f"emoji/{style}",
        images=style_images(corpus, rows),
        index=index,
        labels=[position[category_name(rows[i][field])] for i in index],
        class_names=names,
        templates="emoji",
        data={"source": str(Path(corpus) / f"{style}.tsv"), "field": field, "n": len(index)},
    )


def head_noun_label(caption: str, nouns: list[str] = HEAD_NOUNS) -> int | None:
    """Index of the one noun of ``nouns`` the caption contains as a whole word; None for none or several."""
    found = [c for c, noun in enumerate(nouns) if noun in words(caption)]
    return found[0] if len(found) == 1 else None


def head_noun_task(
    corpus: Path, style: str, rows: list[dict], nouns: list[str] = HEAD_NOUNS
) -> Classification:
    """Zero-shot over ``nouns``; images whose caption has no or several class nouns are left out."""
    labelled = [(i, head_noun_label(row["caption"], nouns)) for i, row in enumerate(rows)]
    labelled = [(i, c) for i, c in labelled if c is not None]
    return Classification(
        image_set=f"emoji/{style}",
        images=style_images(corpus, rows),
        index=[i for i, _ in labelled],
        labels=[c for _, c in labelled],
        class_names=list(nouns),
        templates="emoji",
        data={
            "source": str(Path(corpus) / f"{style}.tsv"),
            "rule": "caption contains exactly one class noun as a whole word",
            "n": len(labelled),
            "n_dropped": len(rows) - len(labelled),
        },
    )


def head_noun_stats(rows: list[dict], nouns: list[str]) -> dict[str, dict[str, int]]:
    """Per noun: captions containing it, captions it labels, distinct skin-tone-free names it labels."""
    containing: Counter = Counter()
    labelled: Counter = Counter()
    names: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        caption_words = words(row["caption"])
        containing.update(noun for noun in nouns if noun in caption_words)
        label = head_noun_label(row["caption"], nouns)
        if label is not None:
            labelled[nouns[label]] += 1
            names[nouns[label]].add(base_name(row["caption"]))
    return {n: {"captions": containing[n], "labelled": labelled[n], "names": len(names[n])} for n in nouns}


def caption_positives(rows: list[dict]) -> tuple[list[str], torch.Tensor]:
    """Unique captions (sorted) and the (T, I) bool matrix of which images carry each caption."""
    captions = sorted({row["caption"] for row in rows})
    position = {caption: t for t, caption in enumerate(captions)}
    positives = torch.zeros(len(captions), len(rows), dtype=torch.bool)  # (T, I)
    for i, row in enumerate(rows):
        positives[position[row["caption"]], i] = True
    return captions, positives


def retrieval_task(corpus: Path, style: str, rows: list[dict]) -> Retrieval:
    """Unique captions <-> the style's images; all images of a caption are its positives."""
    captions, positives = caption_positives(rows)
    return Retrieval(
        image_set=f"emoji/{style}",
        images=style_images(corpus, rows),
        captions=captions,
        positives=positives,
        data={
            "source": str(Path(corpus) / f"{style}.tsv"),
            "texts": "unique captions",
            "images": style,
            "n_texts": len(captions),
            "n_images": len(rows),
        },
    )


def image_retrieval_task(
    corpus: Path, query_style: str, query_rows: list[dict], gallery_style: str, gallery_rows: list[dict]
) -> ImageRetrieval:
    """Images of ``query_style`` rank all images of ``gallery_style``; equal captions are positives.

    Queries are the query-style images whose caption has a drawing in the gallery (the others have
    nothing to find); every gallery image stays in the gallery, a distractor when no query shares it.
    """
    captions, gallery_positives = caption_positives(gallery_rows)  # (T, G): caption t drawn by image g
    row_of = {caption: t for t, caption in enumerate(captions)}
    query_index = [i for i, row in enumerate(query_rows) if row["caption"] in row_of]
    positives = gallery_positives[[row_of[query_rows[i]["caption"]] for i in query_index]]  # (Q, G)
    return ImageRetrieval(
        query_set=f"emoji/{query_style}",
        query_images=style_images(corpus, query_rows),
        query_index=query_index,
        gallery_set=f"emoji/{gallery_style}",
        gallery_images=style_images(corpus, gallery_rows),
        positives=positives,
        query_names=[query_rows[i]["caption"] for i in query_index],
        data={
            "queries": str(Path(corpus) / f"{query_style}.tsv"),
            "gallery": str(Path(corpus) / f"{gallery_style}.tsv"),
            "positives": "gallery images with the query's caption",
            "n_queries": len(query_index),
            "n_gallery": len(gallery_rows),
        },
    )
