"""A recipe is a weighted set of objectives, built from data (YAML), with no code per combination."""

from __future__ import annotations

import torch
from torch import nn

from synclip.objectives import Encoded, Objective
from synclip.registry import OBJECTIVES


class Recipe(nn.Module):
    """Sum of weighted objective losses; every component is reported as ``<name>_<key>``.

    ``objectives`` maps an instance name to its options. The objective class is the option ``type``
    when given, else the name itself, so one recipe can hold two instances of the same objective.
    A weight of 0 keeps the objective (and its state) but skips its computation.
    """

    def __init__(self, model: nn.Module, objectives: dict[str, dict]):
        super().__init__()
        if not objectives:
            raise ValueError("a recipe needs at least one objective")
        self.objectives = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, options in objectives.items():
            options = dict(options)
            self.weights[name] = float(options.pop("weight", 1.0))
            cls = OBJECTIVES.get(options.pop("type", name))
            self.objectives[name] = cls(model, **options)

    def active(self) -> dict[str, Objective]:
        return {n: o for n, o in self.objectives.items() if self.weights[n] != 0}

    def views(self) -> dict[str, list[str]]:
        """Views the data pipeline must build, per source."""
        needed: dict[str, list[str]] = {}
        for objective in self.active().values():
            for source, views in objective.needs().items():
                needed.setdefault(source, [])
                needed[source] += [v for v in views if v not in needed[source]]
        return needed

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        total, parts = 0.0, {}
        active = self.active()
        # every view any objective needs, same-shape views in one tower call each
        enc.prefetch([request for objective in active.values() for request in objective.requests()])
        for name, objective in active.items():
            out = objective(enc, batch)
            total = total + self.weights[name] * out["loss"]
            parts.update({f"{name}_{k}": v for k, v in out.items()})
        return {"loss": total, **parts}

    def logit_scale(self) -> torch.Tensor | None:
        """The image-text temperature to export with the model (the first objective that learns one)."""
        for objective in self.objectives.values():
            if isinstance(getattr(objective, "logit_scale", None), torch.Tensor):
                return objective.logit_scale.detach()
        return None

    @torch.no_grad()
    def post_step(self) -> None:
        for objective in self.active().values():
            objective.post_step()


class Pretrainer(nn.Module):
    """Model + recipe: the one module that DDP wraps, so every objective's work is in ``forward``."""

    def __init__(self, model: nn.Module, recipe: Recipe):
        super().__init__()
        self.model = model
        self.recipe = recipe

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.recipe(Encoded(self.model, batch), batch)

    def post_step(self) -> None:
        self.recipe.post_step()
