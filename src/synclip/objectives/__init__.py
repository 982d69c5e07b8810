"""Objectives register themselves on import; importing this package makes them all available."""

from synclip.objectives import (  # noqa: F401
    clip,
    mlm,
    multiview_clip,
    nclip,
    nearest_neighbour,
    simclr,
    simsiam,
)
from synclip.objectives.base import Encoded, Objective, TemperatureObjective, objective_options

__all__ = ["Encoded", "Objective", "TemperatureObjective", "objective_options"]
