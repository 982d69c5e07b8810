"""Multi-stage recipes: a recipe's ``stages`` run one after another, each a whole training run.

A stage is a named set of config changes over the recipe's top-level config (the base). Stages run in
the order written; a later stage refers to an earlier one's final checkpoint with the string
``stage:<name>`` anywhere a path is expected (``model.pretrained``, ``model.image_init``, an objective's
``teacher``). This is how EVA-style two-stage training is written (Fang et al. 2023,
https://arxiv.org/abs/2211.07636: train CLIP, distil its features into a fresh tower with masked image
modelling, train CLIP again from that tower) and FLIP's unmasked tuning (Li et al. 2023,
https://arxiv.org/abs/2212.00794)::

    stages:
      clip: {}                                     # the base config as it is
      mim:
        objectives: {mim_distill: {teacher: "stage:clip"}}
      clip_again:
        model: {image_init: "stage:mim"}

Merging: sections merge key by key, except ``objectives`` and ``data.sources``, which a stage replaces
as a whole when it sets them (a stage that trains MIM must not also inherit the base's CLIP loss).
Overrides reach one stage with ``stages.<name>.<key>=value``; top-level overrides change the base and
so every stage that does not set the key itself.

Folders: the last stage writes the run folder itself (so ``checkpoint.pt`` there is the final model,
and ``synclip eval`` / ``synclip compare`` need nothing new); the others write ``<run>/stages/<name>/``.
A finished stage is not trained again when the run is resumed (``train.resume=auto``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from synclip.config.schema import ConfigError, RunConfig, build_config, run_dir_for

STAGE_PREFIX = "stage:"
REPLACED_SECTIONS = (("objectives",), ("data", "sources"))


def merge_stage(base: dict, changes: dict, path: tuple[str, ...] = ()) -> dict:
    """``base`` updated by ``changes``: nested mappings merge, except the :data:`REPLACED_SECTIONS`."""
    out = copy.deepcopy(base)
    for key, value in (changes or {}).items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and here not in REPLACED_SECTIONS:
            out[key] = merge_stage(out[key], value, here)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_refs(node: Any, done: dict[str, Path], stage: str) -> Any:
    """Replace every ``stage:<name>`` string by that earlier stage's checkpoint path."""
    if isinstance(node, dict):
        return {k: _resolve_refs(v, done, stage) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, done, stage) for v in node]
    if isinstance(node, str) and node.startswith(STAGE_PREFIX):
        name = node[len(STAGE_PREFIX) :]
        if name not in done:
            raise ConfigError(
                f"stage {stage!r} refers to {node!r}, but only earlier stages can be referred to: "
                f"{sorted(done) or 'none before it'}"
            )
        return str(done[name] / "checkpoint.pt")
    return node


def stage_configs(cfg: RunConfig) -> list[tuple[str, RunConfig]]:
    """One complete, checked :class:`RunConfig` per stage, in order, with folders and references resolved."""
    if not cfg.stages:
        return [("", cfg)]
    base = cfg.to_dict()
    base.pop("stages")
    run_dir = run_dir_for(cfg)
    names = list(cfg.stages)
    done: dict[str, Path] = {}
    plans = []
    for i, name in enumerate(names):
        changes = cfg.stages[name] or {}
        if not isinstance(changes, dict):
            raise ConfigError(f"stages.{name} must be a mapping of config changes, got {changes!r}")
        if "stages" in changes:
            raise ConfigError(f"stages.{name}: stages cannot be nested")
        raw = merge_stage(base, changes)
        last = i == len(names) - 1
        folder = run_dir if last else run_dir / "stages" / name
        raw["train"]["out_dir"], raw["train"]["name"] = str(folder.parent), folder.name
        if not last:
            raw["eval"]["at_end"] = False
        raw = _resolve_refs(raw, done, name)
        try:
            plans.append((name, build_config(raw)))
        except ConfigError as err:
            raise ConfigError(f"stages.{name}: {err}") from None
        done[name] = folder
    return plans
