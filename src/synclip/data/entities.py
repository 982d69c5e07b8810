"""Entity vocabularies for classification objectives (MOFI), read from a source without decoding images.

- Wu et al., MOFI: Learning Image Representations from Noisy Entity Annotated Images, 2023,
  https://arxiv.org/abs/2306.07952: entities are mined from alt-text, rare ones are filtered out, and
  a classifier over the remaining entity vocabulary is trained alongside (or instead of) CLIP.

A vocabulary is a sorted list of distinct entity strings; its order gives the class ids, so the same
source and options always give the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from torch.utils.data import Dataset

from synclip.data.sources import ArrayImageLabel, CsvImageText, ImageFolder
from synclip.data.views.entity import entity_of


def _metadata(source: Dataset) -> Iterator[dict]:
    """Per-sample text fields (``caption``, ``class_name``, CSV extras), without loading images."""
    rows = getattr(source, "metadata", None)
    if callable(rows):  # sources that know their own fields (e.g. EmojiLabels)
        yield from rows()
    elif isinstance(source, CsvImageText):
        names = ("caption", *source.extra_keys)
        for _, caption, *extras in source._rows:
            yield dict(zip(names, (caption.strip(), *extras)))
    elif isinstance(source, ArrayImageLabel):
        for label in source.labels:
            yield {"label": int(label), "class_name": source.classes[int(label)]}
    elif isinstance(source, ImageFolder):
        for _, label in source.samples:
            yield {"label": label, "class_name": source.classes[label]}
    else:
        raise TypeError(
            f"cannot list the entities of a {type(source).__name__} source without reading it; "
            "give the objective a vocabulary file (one entity per line) instead"
        )


def source_entities(source: Dataset, field: str = "auto", normalise: bool = False) -> Iterator[str]:
    """The entity string of every sample of ``source``, as the ``entity`` view would give it."""
    for meta in _metadata(source):
        yield entity_of(meta, field, normalise)  # "" for an empty caption: never in a vocabulary


def build_vocabulary(entities: Iterable[str], min_count: int = 1) -> list[str]:
    """Sorted distinct entities seen at least ``min_count`` times (empty strings dropped)."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    counts = Counter(e for e in entities if e)
    vocabulary = sorted(e for e, n in counts.items() if n >= min_count)
    if not vocabulary:
        raise ValueError(
            f"no entity is seen {min_count} or more times ({len(counts)} distinct entities); lower min_count"
        )
    return vocabulary


def read_vocabulary(path: str | Path) -> list[str]:
    """A vocabulary file: one entity per line, blank lines skipped, order kept (line i = class i)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file {path} does not exist (expected one entity per line)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    vocabulary = [line for line in lines if line]
    if not vocabulary:
        raise ValueError(f"vocabulary file {path} holds no entities")
    duplicates = sorted(e for e, n in Counter(vocabulary).items() if n > 1)
    if duplicates:
        raise ValueError(f"vocabulary file {path} lists entities twice: {duplicates[:5]}")
    return vocabulary
