"""Objectives register themselves on import; importing this package makes them all available."""

from synclip.objectives import (  # noqa: F401
    aclip,
    caption,
    classify,
    clip,
    mae,
    masked_prediction,
    mim_distill,
    mlm,
    multiview_clip,
    nclip,
    nearest_neighbour,
    self_distill,
    siglip,
    simclr,
    simsiam,
    text_simsiam,
    unicl,
)
from synclip.objectives.base import Encoded, Objective, TemperatureObjective, objective_options

__all__ = ["Encoded", "Objective", "TemperatureObjective", "objective_options"]
