"""Run configuration: typed dataclasses filled from a recipe YAML plus dotted ``key=value`` overrides.

Unknown keys and values of the wrong type are errors that list what is valid. Objective options are
checked against the objective's constructor, view options against the view builder's defaults, and
every stage of a staged recipe is checked before anything trains.
"""

from __future__ import annotations

from pathlib import Path

from synclip.config.schema import (
    RECIPE_DIR,
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_override,
    build_config,
    list_recipes,
    read_recipe,
    run_dir_for,
)
from synclip.config.stages import STAGE_PREFIX, merge_stage, stage_configs

__all__ = [
    "RECIPE_DIR",
    "STAGE_PREFIX",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "apply_override",
    "build_config",
    "from_dict",
    "list_recipes",
    "load_config",
    "merge_stage",
    "run_dir_for",
    "stage_configs",
]


def from_dict(raw: dict) -> RunConfig:
    """A checked :class:`RunConfig`; a staged recipe has every stage checked now, not after hours of
    training the first."""
    cfg = build_config(raw)
    if cfg.stages:
        stage_configs(cfg)
    return cfg


def load_config(recipe: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a recipe (a shipped name or a YAML path) and apply ``a.b=value`` overrides."""
    path = Path(recipe)
    if not path.suffix:
        path = RECIPE_DIR / f"{recipe}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(list_recipes())}")
    elif not path.exists():
        raise ConfigError(f"recipe file {path} does not exist")
    raw = read_recipe(path)
    raw.setdefault("recipe", path.stem)
    for item in overrides:
        apply_override(raw, item)
    return from_dict(raw)
