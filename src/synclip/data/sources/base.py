"""Source registry: each ``data.sources.<name>.kind`` is a builder registered with its option defaults.

A source *builder* is registered in :data:`synclip.registry.SOURCES`::

    @register_source("csv", path=None, img_key="filepath", ..., batch_size=None)
    def build(name: str, opts: dict) -> Dataset: ...

``opts`` arrives complete (defaults merged, unknown names rejected, ``kind`` removed); ``name`` is the
source's name in the config, for error messages. Builders live in the modules of
:mod:`synclip.data.sources`, named after what they hold; a new source kind is one new file there plus
one import line in ``synclip/data/sources/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch.utils.data import Dataset

from synclip.registry import SOURCES

SOURCE_OPTIONS: dict[str, dict[str, Any]] = {}


def register_source(kind: str, **defaults: Any) -> Callable:
    """Decorator: register a source builder ``build(name, opts) -> Dataset`` under ``kind``."""

    def add(build: Callable) -> Callable:
        SOURCES.register(kind)(build)
        SOURCE_OPTIONS[kind] = dict(defaults)
        return build

    return add


def source_defaults(kind: str) -> dict[str, Any]:
    """A copy of the default options of source ``kind`` (KeyError listing known kinds if unknown)."""
    SOURCES.get(kind)
    return dict(SOURCE_OPTIONS[kind])


def resolve_source(name: str, spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(kind, complete options)`` of the ``data.sources.<name>`` entry ``spec``; ValueError if invalid."""
    kind = spec.get("kind")
    if kind not in SOURCES:
        raise ValueError(f"data.sources.{name}.kind must be one of {SOURCES.names()}, got {kind!r}")
    defaults = source_defaults(kind)
    options = {k: v for k, v in spec.items() if k != "kind"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"data.sources.{name}: unknown option(s) {unknown}; valid: {sorted(defaults)}")
    return kind, {**defaults, **options}


def build_source(name: str, spec: Mapping[str, Any]) -> Dataset:
    """A dataset of dict samples from a ``data.sources.<name>`` entry."""
    kind, opts = resolve_source(name, spec)
    return SOURCES.get(kind)(name, opts)
