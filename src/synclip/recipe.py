"""A recipe is a weighted set of objectives, built from data (YAML), with no code per combination."""

from __future__ import annotations

import torch
from torch import nn

from synclip.objectives import Encoded, Objective
from synclip.objectives.base import RunContext, TemperatureObjective
from synclip.registry import OBJECTIVES


class Recipe(nn.Module):
    """Sum of weighted objective losses; every component is reported as ``<name>_<key>``.

    ``objectives`` maps an instance name to its options. The objective class is the option ``type``
    when given, else the name itself, so one recipe can hold two instances of the same objective.
    A weight of 0 keeps the objective (and its state) but skips its computation. ``start_fraction``
    (default 0) switches an objective on only once that fraction of the run's steps is done (SigLIP 2
    adds self-distillation and masked prediction for the last 20%: ``start_fraction: 0.8``): before,
    it is not run and adds no loss, but it exists from step 0 (its heads and EMA teacher are in every
    checkpoint, and its ``post_step`` runs, so an EMA teacher follows the student all along).

    With a ``context`` (the run's views and sources), each objective's :meth:`Objective.prepare`
    fills its options from the run first (vocabularies, view statistics).
    """

    def __init__(self, model: nn.Module, objectives: dict[str, dict], context: RunContext | None = None):
        super().__init__()
        if not objectives:
            raise ValueError("a recipe needs at least one objective")
        self.objectives = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        self.starts: dict[str, float] = {}  # start_fraction of each objective
        self.progress = 0.0  # set_progress: where training stands
        self.kinds: dict[str, str] = {}
        self.options: dict[str, dict] = {}  # as configured, completed with the defaults
        for name, options in objectives.items():
            options = dict(options or {})
            self.weights[name] = float(options.pop("weight", 1.0))
            self.kinds[name] = options.pop("type", name)
            self.starts[name] = float(options.pop("start_fraction", 0.0))
            if not 0.0 <= self.starts[name] < 1.0:
                raise ValueError(
                    f"objectives.{name}.start_fraction must lie in [0, 1) (the fraction of the run's steps "
                    f"done before it switches on), got {self.starts[name]}"
                )
            cls = OBJECTIVES.get(self.kinds[name])
            self.options[name] = cls.resolve(options)
            if context is not None:
                options = cls.prepare(options, context.named(name))
            self.objectives[name] = cls(model, **options)
            self.objectives[name].start_fraction = self.starts[name]
            if context is not None:
                context.named(name).check_reads(self.objectives[name].reads())
        self._tie_temperatures()
        self._tie_heads()

    def _tie_heads(self) -> None:
        """Objectives with ``heads_of`` (``text_simsiam``) use the named objective's SimSiam heads."""
        for name, objective in self.objectives.items():
            owner_name = getattr(objective, "heads_of", None)
            if not owner_name:
                continue
            owner = self.objectives[owner_name] if owner_name in self.objectives else None
            if owner is None or owner is objective or not hasattr(owner, "predictor"):
                raise ValueError(
                    f"objectives.{name}.heads_of: {owner_name!r} is not another objective with SimSiam "
                    f"heads in this recipe ({', '.join(self.objectives)}); add a simsiam objective or set "
                    f"objectives.{name}.heads_of=null for heads of its own"
                )
            objective.share_heads(owner)

    def _tie_temperatures(self) -> None:
        """Objectives with ``temperature_of`` use the named objective's ``logit_scale`` parameter."""
        for name, objective in self.objectives.items():
            owner_name = getattr(objective, "temperature_of", None)
            if not owner_name:
                continue
            owner = self.objectives[owner_name] if owner_name in self.objectives else None
            if not isinstance(owner, TemperatureObjective) or owner is objective:
                raise ValueError(
                    f"objectives.{name}.temperature_of: {owner_name!r} is not another objective with a "
                    f"temperature in this recipe ({', '.join(self.objectives)})"
                )
            if getattr(owner, "temperature_of", None):
                raise ValueError(
                    f"objectives.{name}.temperature_of: {owner_name!r} shares a temperature itself"
                )
            objective.share_temperature(owner)

    def active(self) -> dict[str, Objective]:
        """Objectives with a non-zero weight: their views are built and their ``post_step`` runs."""
        return {n: o for n, o in self.objectives.items() if self.weights[n] != 0}

    def running(self) -> dict[str, Objective]:
        """Active objectives whose ``start_fraction`` of the run is reached: those computed this step."""
        return {n: o for n, o in self.active().items() if self.progress >= self.starts[n]}

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
        active = self.running()
        # every view any objective needs, same-shape views in one tower call each
        enc.prefetch([request for objective in active.values() for request in objective.requests()])
        for name, objective in active.items():
            out = objective(enc, batch)
            total = total + self.weights[name] * out["loss"]
            parts.update({f"{name}_{k}": v for k, v in out.items()})
        return {"loss": total, **parts}

    def export_state(self) -> dict[str, torch.Tensor]:
        """What the objectives export beside the towers (``logit_scale``, ...): the first objective
        to give a key wins, weight-0 objectives included."""
        out: dict[str, torch.Tensor] = {}
        for objective in self.objectives.values():
            for key, value in objective.export_state().items():
                out.setdefault(key, value.detach())
        return out

    def heads(self) -> dict[str, dict]:
        """``{name: {"type", "options", "state"}}`` of the objectives with an inference head: what
        :func:`synclip.load` rebuilds as ``model.heads``."""
        out = {}
        for name, objective in self.objectives.items():
            state = objective.inference_state()
            if state is not None:
                out[name] = {"type": self.kinds[name], "options": self.options[name], "state": state}
        return out

    def may_leave_unused(self) -> bool:
        """Whether a step may leave trainable parameters without a gradient, which DDP must be told.

        That happens to the parameters of objectives with weight 0 (skipped, but still in the module);
        to parts of the towers when no active objective reads both an image and a text view (an
        image-only recipe such as ``simclr`` leaves the text tower without gradients); and when an
        objective says so (:meth:`Objective.may_leave_unused`); and when an objective starts late
        (``start_fraction``): until then its parameters get none. Frozen parameters need nothing.
        """
        skipped = any(
            p.requires_grad
            for name, o in self.objectives.items()
            if self.weights[name] == 0
            for p in o.parameters()
        )
        active = self.active().values()
        pairs = any(o.towers() >= {"image", "text"} for o in active)
        late = any(self.starts[name] > 0 for name in self.active())
        return skipped or late or not pairs or any(o.may_leave_unused() for o in active)

    def set_progress(self, step: int, total_steps: int) -> None:
        """Tell every objective (weight 0 included) where training stands (:meth:`Objective.set_progress`)."""
        for objective in self.objectives.values():
            objective.set_progress(step, total_steps)
        self.progress = min(1.0, step / total_steps) if total_steps else 0.0

    @torch.no_grad()
    def post_step(self) -> None:
        for objective in self.active().values():
            objective.post_step()


def saved_heads(state: dict) -> dict[str, dict]:
    """The inference heads a checkpoint (or an export) carries: ``{name: {"type", "options", "state"}}``.

    Checkpoints written before heads had their own key keep them in the objectives' state; they are
    read from there, through the same contract (``has_head``), so old runs still evaluate.
    """
    if isinstance(state.get("heads"), dict):
        return state["heads"]
    recipe_state, objectives = state.get("recipe") or {}, (state.get("config") or {}).get("objectives") or {}
    out = {}
    for name, options in objectives.items():
        options = dict(options or {})
        options.pop("weight", None)
        options.pop("start_fraction", None)
        kind = options.pop("type", name)
        if kind not in OBJECTIVES or not OBJECTIVES.get(kind).has_head:
            continue
        prefix = f"objectives.{name}."
        own = {k[len(prefix) :]: v for k, v in recipe_state.items() if k.startswith(prefix)}
        if own:
            out[name] = {"type": kind, "options": OBJECTIVES.get(kind).resolve(options), "state": own}
    return out


def build_heads(entries: dict[str, dict]) -> dict[str, nn.Module]:
    """``model.heads``: each saved head rebuilt by its objective class (:meth:`Objective.inference_head`)."""
    return {
        name: OBJECTIVES.get(entry["type"]).inference_head(entry["options"], entry["state"]).eval()
        for name, entry in entries.items()
    }


class Pretrainer(nn.Module):
    """Model + recipe: the one module that DDP wraps, so every objective's work is in ``forward``."""

    def __init__(self, model: nn.Module, recipe: Recipe):
        super().__init__()
        self.model = model
        self.recipe = recipe

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.recipe(Encoded(self.model, batch), batch)

    def set_progress(self, step: int, total_steps: int) -> None:
        self.recipe.set_progress(step, total_steps)

    def post_step(self) -> None:
        self.recipe.post_step()
