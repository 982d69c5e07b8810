"""Check, when the recipe is built (before any data is loaded), that every view an objective reads
finds its sample field.

Each source kind gives fixed sample fields (image-text sources a ``caption``, labelled ones a
``label`` and ``class_name``, and a ``caption`` too when a view reads one: the class name in a prompt
template, :func:`prompted_views`). Every view an active objective reads from a source is applied to a
small synthetic sample with exactly those fields; a view that asks for a field the source lacks (the
``text`` view over an image folder) is a ConfigError naming the view, the field and a fix, instead of
a DataLoader worker's KeyError after the model is built. An ``hf_dataset`` source gives the fields
its ``caption_key`` / ``label_key`` options name (:func:`source_fields`). Webdataset sources hold
whatever their shards hold, so they are not checked.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

PAIR_FIELDS = ("image", "caption", "key")
LABEL_FIELDS = ("image", "label", "class_name", "key")
SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "csv": PAIR_FIELDS,
    "emoji": (*PAIR_FIELDS, "category", "subcategory"),
    "image_folder": LABEL_FIELDS,
    "fashion_mnist": LABEL_FIELDS,
    "mnist5k": LABEL_FIELDS,
    "emoji_labels": LABEL_FIELDS,
}
# labelled sources give their class names as prompts to views that read captions (PromptCaptions)
PROMPTED = {kind for kind, fields in SOURCE_FIELDS.items() if fields == LABEL_FIELDS}


def source_fields(source: str | dict) -> tuple[str, ...] | None:
    """The sample fields of a source, from its kind or its whole ``data.sources`` entry (an
    ``hf_dataset`` source gives the fields its ``caption_key`` / ``label_key`` options name); None
    when unknown (webdataset shards hold whatever was written)."""
    spec = source if isinstance(source, dict) else {"kind": source}
    if spec.get("kind") == "hf_dataset":
        from synclip.data.sources import source_defaults

        opts = {**source_defaults("hf_dataset"), **spec}
        fields = ("image", "key") + (("caption",) if opts["caption_key"] is not None else ())
        return fields + (("label", "class_name") if opts["label_key"] is not None else ())
    return SOURCE_FIELDS.get(spec.get("kind"))


def is_prompted(source: str | dict) -> bool:
    """Whether a source is labelled without captions, so views that read captions get its class names
    in prompt templates."""
    spec = source if isinstance(source, dict) else {"kind": source}
    if spec.get("kind") in PROMPTED:
        return True
    fields = source_fields(spec)
    return fields is not None and "label" in fields and "caption" not in fields


# what to read instead, per missing field: (view to use, why)
INSTEAD = {"caption": "text_prompt", "class_name": "text", "label": "target"}


class _StandInTokenizer:
    """Token ids of zeros: enough for a view to run on the synthetic sample without loading BPE files."""

    pad_id, sot_token_id, eot_token_id, vocab_size, context_length = 0, 1, 2, 8, 8

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else texts
        return torch.zeros(len(texts), self.context_length, dtype=torch.long)  # (n, L)

    def encode(self, text: str) -> list[int]:
        return [3] * min(len(text.split()), 4)


def _synthetic(fields: tuple[str, ...]) -> dict[str, Any]:
    values = {"image": Image.new("RGB", (16, 16), (128, 64, 32)), "caption": "a small cat", "label": 0}
    return {f: values.get(f, "cat") for f in fields}


def needs_field(view: str, view_cfg: dict, fields: tuple[str, ...], field: str) -> bool:
    """Whether ``view`` (options from ``views``) asks for ``field`` of a sample that has ``fields``."""
    from synclip.data.views import resolve_view
    from synclip.registry import VIEWS

    try:
        kind, options = resolve_view(view, view_cfg.get(view))
        VIEWS.get(kind)(options, _StandInTokenizer(), False)(
            _synthetic(tuple(f for f in fields if f != field))
        )
    except KeyError as err:
        return f"field '{field}'" in str(err)
    except Exception:  # other view errors are reported when the data is built
        return False
    return False


def prompted_views(views, names: list[str], view_cfg: dict, source: str | dict | None):
    """``views`` (a callable over samples) for ``source`` (its kind or its ``data.sources`` entry): over
    a labelled source without captions,
    when one of ``names`` reads captions, wrapped so each sample's caption is its class name in a
    prompt template (:class:`~synclip.data.views.prompt.PromptCaptions`, templates of
    ``views.text_prompt.templates``); otherwise unchanged, so no random draw moves other views' RNG."""
    from synclip.data.views.prompt import UNICL_TEMPLATES, PromptCaptions

    if source is None or not is_prompted(source):
        return views
    fields = (*source_fields(source), "caption")
    if not any(needs_field(name, view_cfg, fields, "caption") for name in names):
        return views
    templates = (view_cfg.get("text_prompt") or {}).get("templates", UNICL_TEMPLATES)
    return PromptCaptions(views, templates)


def view_field_problem(cfg, recipe) -> str | None:
    """The first view an active objective of ``recipe`` reads (:meth:`Objective.reads`) that needs a
    field its source does not give, as a sentence with a fix; else None."""
    from synclip.data.views import resolve_view
    from synclip.registry import VIEWS

    for objective, instance in recipe.active().items():
        for read in instance.reads():
            source, view = read.source, read.view
            spec = cfg.data.sources.get(source)
            fields = source_fields(spec) if isinstance(spec, dict) else None
            if fields is None:
                continue  # an unknown source or kind is reported when the data is built
            if is_prompted(spec):
                fields = (*fields, "caption")  # class prompts as captions (prompted_views)
            kind, view_options = resolve_view(view, cfg.views.get(view))
            try:
                VIEWS.get(kind)(view_options, _StandInTokenizer(), False)(_synthetic(fields))
            except KeyError as err:
                missing = next((f for f in INSTEAD if f"field '{f}'" in str(err)), None)
                if missing is None:
                    raise
                fix = INSTEAD[missing]
                return (
                    f"objectives.{objective} reads view {view!r}, which needs the sample field "
                    f"{missing!r}, but data.sources.{source} (kind {spec['kind']}) gives only "
                    f"{', '.join(fields)}; point the objective's view option at a view that uses what it "
                    f"gives, e.g. objectives.{objective}.{_option_of(instance, view)}={fix}, or use another source"
                )
            except Exception:  # other view errors are reported when the data is built
                continue
    return None


def _option_of(objective, view: str) -> str:
    """The option of ``objective`` that names ``view`` (for the message), e.g. ``text_view``."""
    for name, value in vars(objective).items():
        if value == view and name.endswith("view"):
            return name
    return "text_view"
