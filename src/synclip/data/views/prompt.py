"""Views for label supervision as UniCL uses it: class names as prompts and shared-label targets.

- ``text_prompt``: the sample's ``class_name`` in a prompt template, tokenised (UniCL, Yang et al. 2022,
  https://arxiv.org/abs/2204.03610, draws one of CLIP's 80 ImageNet templates or ``'{}.'`` per sample,
  and one of the class's names when it has several: the sample's ``synonyms``).
- ``target``: an int64 label shared by samples that UniCL treats as positives of each other.
"""

from __future__ import annotations

import hashlib
import random
from functools import partial
from typing import Any

from synclip.data.views.base import register_view, sample_field

UNICL_TEMPLATES = "unicl"  # CLIP's 80 ImageNet templates + '{}.', as UniCL's prompt_engineering.py


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


def draw_name(sample: dict, train: bool) -> str:
    """The class name to prompt with: in training one of the class's ``synonyms`` drawn uniformly
    (UniCL's ``random.choice(classnames)``, ``data/language/prompt_engineering.py``) from ``random``,
    which the loader seeds per sample; else, and for a class with one name, its ``class_name``
    (without touching ``random``, so such a class draws exactly what it drew before synonyms)."""
    names = sample.get("synonyms") or ()
    if train and len(names) > 1:
        return str(random.choice(names))
    return str(sample_field(sample, "class_name", "text_prompt"))


def _prompt(tokenizer: Any, templates: list[str], train: bool, sample: dict) -> Any:
    template = random.choice(templates) if train else templates[0]  # the loader seeds `random`
    return tokenizer([_fill(template, draw_name(sample, train))])[0]


@register_view("text_prompt", tower="text", templates=UNICL_TEMPLATES)
def build_text_prompt_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Class name -> prompt -> token ids (context_length,); a random template in training, else the first."""
    if tokenizer is None:
        raise ValueError("the text_prompt view needs a tokenizer (got None)")
    return partial(_prompt, tokenizer, prompt_templates(str(cfg["templates"])), train)


class PromptCaptions:
    """Views over a labelled source for recipes that read captions: each sample without a ``caption``
    gets one, its ``class_name`` in a prompt template (a random one per sample, as the ``text_prompt``
    view draws it; the loader seeds ``random``), before the views run. So ``text``, ``text_eda``,
    ``text_mlm`` and every other caption view train on an image folder with class prompts as captions.
    Picklable (DataLoader workers)."""

    def __init__(self, views: Any, templates: str = UNICL_TEMPLATES):
        self.views = views
        self.templates = prompt_templates(str(templates))

    def __call__(self, sample: dict) -> dict:
        if "caption" not in sample and "class_name" in sample:
            template = random.choice(self.templates)
            sample = {**sample, "caption": _fill(template, draw_name(sample, True))}
        return self.views(sample)


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
