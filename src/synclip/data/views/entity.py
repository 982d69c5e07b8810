"""The ``entity`` view: the entity string a MOFI classifier predicts.

MOFI (Wu et al. 2023, https://arxiv.org/abs/2306.07952) trains a classifier over entity names; here an
entity is a sample's class name, caption or another text field, optionally normalised.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from synclip.data.views.base import register_view, sample_field

ENTITY_FIELDS = ("auto", "class_name", "caption", "category", "subcategory")

SKIN_TONE = re.compile(r"\b(?:light|medium-light|medium|medium-dark|dark) skin tone\b")


def normalise_entity(text: str) -> str:
    """Lower-case, drop a qualifier after a colon and Unicode skin-tone modifiers, squeeze spaces.

    ``"Man technologist: medium skin tone"`` and the emoji corpus's colon-less ``"man technologist
    medium skin tone"`` both give ``"man technologist"``.
    """
    text = SKIN_TONE.sub(" ", text.split(":", 1)[0].lower())
    return " ".join(text.replace(",", " ").split())


def entity_of(sample: dict, field: str, normalise: bool) -> str:
    """The entity string of a sample (``field="auto"``: its class name if it has one, else its caption)."""
    if field == "auto":
        field = "class_name" if "class_name" in sample else "caption"
    text = str(sample_field(sample, field, "entity"))
    return normalise_entity(text) if normalise else text


@register_view("entity", field="auto", normalise=False)
def build_entity_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Entity string of a sample; strings stay a list after collate."""
    if cfg["field"] not in ENTITY_FIELDS:
        raise ValueError(f"view entity, option field must be one of {ENTITY_FIELDS}, got {cfg['field']!r}")
    return partial(entity_of, field=cfg["field"], normalise=bool(cfg["normalise"]))
