"""Two-tower models: open_clip architectures and synclip's small CPU configurations."""

from synclip.models.factory import (
    DEFAULT_LOGIT_SCALE,
    create_model,
    list_models,
    load_state,
    load_weights,
    model_config,
    open_clip_state_dict,
)
from synclip.models.two_tower import TwoTower

__all__ = [
    "DEFAULT_LOGIT_SCALE",
    "TwoTower",
    "create_model",
    "list_models",
    "load_state",
    "load_weights",
    "model_config",
    "open_clip_state_dict",
]
