"""Objectives register themselves on import; importing this package makes them all available."""

from synclip.objectives import clip  # noqa: F401
from synclip.objectives.base import Encoded, Objective, objective_options

__all__ = ["Encoded", "Objective", "objective_options"]
