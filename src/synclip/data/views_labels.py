"""Views for label supervision: class names as prompts (UniCL), label ids, entity strings (MOFI).

- ``text_prompt``: the sample's ``class_name`` in a prompt template, tokenised (UniCL, Yang et al. 2022,
  https://arxiv.org/abs/2204.03610, draws one of CLIP's 80 ImageNet templates or ``'{}.'`` per sample).
- ``target``: an int64 label shared by samples that UniCL treats as positives of each other.
- ``entity``: the entity string a MOFI classifier predicts (Wu et al. 2023, https://arxiv.org/abs/2306.07952).
"""

from __future__ import annotations

import hashlib
import random
import re
from functools import partial
from typing import Any

from synclip.data.views import register_view, sample_field

UNICL_TEMPLATES = "unicl"  # CLIP's 80 ImageNet templates + '{}.', as UniCL's prompt_engineering.py
ENTITY_FIELDS = ("auto", "class_name", "caption", "category", "subcategory")


def prompt_templates(spec: str) -> list[str]:
    """The templates named by ``spec``: ``unicl``, a set of ``synclip.data.templates`` or a file path."""
    from synclip.data.templates import get_templates, resolve_templates  # lazy: eval imports data

    if spec == UNICL_TEMPLATES:
        return [*get_templates("openai_imagenet"), "{}."]
    try:
        return resolve_templates(spec)[1]
    except ValueError as err:
        raise ValueError(f"view text_prompt, option templates: {err} (or {UNICL_TEMPLATES!r})") from None


def _fill(template: str, name: str) -> str:
    return template.replace("{c}", name).replace("{}", name)


def _prompt(tokenizer: Any, templates: list[str], train: bool, sample: dict) -> Any:
    name = str(sample_field(sample, "class_name", "text_prompt"))
    template = random.choice(templates) if train else templates[0]  # the loader seeds `random`
    return tokenizer([_fill(template, name)])[0]


@register_view("text_prompt", templates=UNICL_TEMPLATES)
def build_text_prompt_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Class name -> prompt -> token ids (context_length,); a random template in training, else the first."""
    if tokenizer is None:
        raise ValueError("the text_prompt view needs a tokenizer (got None)")
    return partial(_prompt, tokenizer, prompt_templates(str(cfg["templates"])), train)


def stable_label(text: str) -> int:
    """A 63-bit non-negative int64 hash of ``text`` (blake2b), equal across processes and runs."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def target_key(sample: dict) -> str:
    """``class:<name>`` for labelled samples, ``caption:<caption>`` for image-text ones."""
    if "class_name" in sample:
        return f"class:{sample['class_name']}"
    return f"caption:{sample_field(sample, 'caption', 'target')}"


def _target(sample: dict) -> int:
    return stable_label(target_key(sample))


@register_view("target")
def build_target_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the target view (no options): identical captions, or equal class names, share a label."""
    return _target


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
