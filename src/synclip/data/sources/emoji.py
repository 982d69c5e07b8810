"""The emoji corpus as sources: ``emoji`` (image-text pairs) and ``emoji_labels`` (images labelled by
their Unicode category or subcategory). The corpus is built on first use (:mod:`synclip.data.emoji`).
"""

from __future__ import annotations

from pathlib import Path

from synclip.data.emoji import build_emoji_corpus
from synclip.data.sources.base import build_source, register_source
from synclip.data.sources.csv_labels import CsvImageLabel
from synclip.data.sources.csv_pairs import CsvImageText

STYLES = {"twemoji": "twemoji.tsv", "openmoji": "openmoji.tsv", "all": "emoji.tsv"}
LEVELS = ("category", "subcategory")


@register_source("emoji", style="twemoji", root=None, batch_size=None)
def build_emoji_source(name: str, opts: dict) -> CsvImageText:
    """Emoji image-caption pairs of one style (or ``all``), with their category columns."""
    corpus = build_emoji_corpus(Path(opts["root"]) if opts["root"] else None)
    if opts["style"] not in STYLES:
        raise ValueError(f"data.sources.{name}.style must be one of {sorted(STYLES)}")
    return CsvImageText(
        corpus / STYLES[opts["style"]],
        img_key="filepath",
        caption_key="caption",
        sep="\t",
        extra_keys=("category", "subcategory"),
    )


@register_source("emoji_labels", style="twemoji", root=None, level="category", batch_size=None)
def build_emoji_labels_source(name: str, opts: dict) -> CsvImageLabel:
    """Emoji images labelled with their category or subcategory name."""
    if opts["level"] not in LEVELS:
        raise ValueError(f"data.sources.{name}.level must be one of {LEVELS}, got {opts['level']!r}")
    emoji = {"kind": "emoji", "style": opts["style"], "root": opts["root"]}
    return CsvImageLabel(build_source(name, emoji), opts["level"])
