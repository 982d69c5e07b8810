"""Entity vocabularies of classification objectives, built from the run's sources before the Recipe.

An objective class that sets ``needs_vocabulary = True`` (e.g. ``classify``, MOFI, Wu et al. 2023,
https://arxiv.org/abs/2306.07952) and is configured with ``vocabulary: null`` gets the sorted entities
of its ``source`` (as its ``entity_view`` gives them) seen at least ``min_count`` times. The list is
passed to the objective's constructor; the config itself is left as written.
"""

from __future__ import annotations

from synclip.config import RunConfig
from synclip.data.entities import build_vocabulary, source_entities
from synclip.data.views import resolve_view
from synclip.objectives import objective_options
from synclip.registry import OBJECTIVES


def with_vocabularies(cfg: RunConfig) -> dict[str, dict]:
    """``cfg.objectives`` (copied) with every ``vocabulary: null`` replaced by the list built from data."""
    from synclip.train.data import build_source  # train.data imports the data stack; keep this light

    objectives = {}
    for name, options in cfg.objectives.items():
        options = dict(options or {})
        kind = options.get("type", name)
        if getattr(OBJECTIVES.get(kind), "needs_vocabulary", False) and options.get("vocabulary") is None:
            defaults = objective_options(kind)
            source = options.get("source", defaults["source"])
            view = options.get("entity_view", defaults["entity_view"])
            min_count = int(options.get("min_count", defaults["min_count"]))
            spec = dict(cfg.data.sources.get(source) or {})
            if not spec:
                raise ValueError(
                    f"objectives.{name} reads source {source!r}, but data.sources has only "
                    f"{list(cfg.data.sources)}"
                )
            if spec.get("kind") == "webdataset":
                raise ValueError(
                    f"objectives.{name}: cannot build a vocabulary from the streamed source {source!r}; "
                    f"set objectives.{name}.vocabulary to a file with one entity per line"
                )
            view_kind, view_opts = resolve_view(view, cfg.views.get(view))
            if view_kind != "entity":
                raise ValueError(
                    f"objectives.{name}.entity_view {view!r} is a {view_kind!r} view, not entity"
                )
            spec.pop("batch_size", None)
            entities = source_entities(build_source(source, spec), view_opts["field"], view_opts["normalise"])
            options["vocabulary"] = build_vocabulary(entities, min_count)
        objectives[name] = options
    return objectives
