"""The objective contract and the per-step encoding memo.

An objective is one small module. Everything the trainer, the checkpoint, export and
:func:`synclip.load` ask of it is declared on :class:`Objective`, with a default, so a new method is
one file plus a recipe:

- ``__init__(model, **options)``: its options (the config checks them against the signatures);
- ``prepare(options, ctx)`` (classmethod): options filled from the run before it is built
  (vocabularies from data, a view's normalisation); default: as given;
- ``reads()``: the views it reads, each with its source and tower (:class:`Read`);
- ``set_progress(step, total_steps)``: called by the training loop before every step's forward, so an
  objective knows where training stands (``self.progress``: an EMA teacher's momentum schedule, an
  objective switched on for the last part of a run);
- ``forward(enc, batch) -> {"loss": ..., **metrics}`` and ``post_step()`` (clamps, queues, EMA);
- ``tower_parameters()``: own parameters fed into a tower call (a mask token);
- ``may_leave_unused()``: whether a step can leave some of its parameters without a gradient;
- ``export_state()``: tensors that belong beside the towers in open_clip's layout (``logit_scale``);
- ``inference_state()`` and ``inference_head(options, state)`` (classmethod): a head needed at
  inference, saved under ``heads`` in checkpoints and exports and rebuilt by :func:`synclip.load` as
  ``model.heads[name]``.

Its parameters and buffers land under ``recipe.objectives.<name>.*`` in checkpoints.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from synclip.registry import OBJECTIVES

Request = tuple[str, str, str, float]  # (tower, view, source, patch dropout)
TOWERS = ("image", "text")


@dataclass(frozen=True)
class Read:
    """One view an objective reads: from ``source``, through ``tower`` ("image", "text", or None for a
    view that is not encoded, such as a label or a mask), with ``patch_dropout`` in training.

    ``memo=False`` marks a view the objective encodes itself (with a patch mask, say, through
    :meth:`Encoded.memo`), so the shared memo does not encode it as well.
    """

    view: str
    tower: str | None
    source: str = "pairs"
    patch_dropout: float = 0.0
    memo: bool = True

    def __post_init__(self) -> None:
        if self.tower is not None and self.tower not in TOWERS:
            raise ValueError(f"a view goes through the image or the text tower (or none), not {self.tower!r}")


class RunContext:
    """What :meth:`Objective.prepare` may look at: the run's ``views`` and ``data.sources`` sections."""

    def __init__(self, views: dict | None = None, sources: dict | None = None, objective: str = ""):
        self.views = dict(views or {})
        self.sources = dict(sources or {})
        self.objective = objective  # the instance name being prepared, for error messages

    def named(self, objective: str) -> RunContext:
        """This context for the objective instance called ``objective``."""
        return RunContext(self.views, self.sources, objective)

    def view(self, name: str) -> tuple[str, dict[str, Any]]:
        """``(kind, complete options)`` of the view called ``name`` in this run."""
        from synclip.data.views import resolve_view

        return resolve_view(name, self.views.get(name))

    def check_reads(self, reads: list[Read]) -> None:
        """Each view read through a tower must be a kind registered for that tower."""
        from synclip.data.views import view_tower_of
        from synclip.registry import VIEWS

        for read in reads:
            kind = (self.views.get(read.view) or {}).get("kind", read.view)
            if read.tower is None or kind not in VIEWS:
                continue  # unknown kinds are the data pipeline's error, with the list of known views
            feeds = view_tower_of(read.view, self.views)
            if feeds != read.tower:
                raise ValueError(
                    f"objectives.{self.objective} reads view {read.view!r} through the {read.tower} tower, "
                    f"but a {kind!r} view feeds {f'the {feeds} tower' if feeds else 'no tower'}; "
                    f"point the objective at a {read.tower} view"
                )

    def open_source(self, name: str):
        """The map-style dataset of source ``name`` (errors name the objective that asked)."""
        from synclip.data.sources import build_source

        who = f"objectives.{self.objective}"
        spec = dict(self.sources.get(name) or {})
        if not spec:
            raise ValueError(f"{who} reads source {name!r}, but data.sources has only {list(self.sources)}")
        if spec.get("kind") == "webdataset":
            raise ValueError(
                f"{who}: cannot read the streamed source {name!r} before training; give the option that "
                "needs it explicitly (e.g. a vocabulary file with one entity per line)"
            )
        spec.pop("batch_size", None)
        return build_source(name, spec)


class Encoded:
    """Memo of tower outputs for one batch: a view is encoded once, whoever asks for it.

    A view of shape (B, V, C, H, W) (V crops per sample) goes through the tower in one (B * V) call;
    its outputs come back as (B, V, ...). Text views are token ids (B, L); a (B, 2, L) text view
    carries ``[ids; MLM labels]`` (``text_mlm``) and is encoded from its ids.

    :meth:`prefetch` encodes many views at once: views with the same per-item shape (and the same
    patch dropout) are concatenated into one tower call, e.g. ``image`` (B, 3, H, W) and
    ``image_ssl`` (B, N, 3, H, W) go through the image tower as one (B + B * N) batch; except through
    a tower holding BatchNorm in training mode (an unlocked EfficientNet), whose batch statistics
    would then pool the views (CLIP and SSL crops alike): there each view is its own call, as when
    encoded alone. Patch dropout is applied only while the model is in training mode.
    """

    def __init__(self, model: nn.Module, batch: dict):
        self.model = model
        self.batch = batch
        self._cache: dict[tuple[str, str, str, float], dict[str, torch.Tensor]] = {}

    def image(self, view: str = "image", source: str = "pairs", patch_dropout: float = 0.0) -> dict:
        return self._encode(("image", view, source, self._dropout(patch_dropout)))

    def text(self, view: str = "text", source: str = "pairs") -> dict[str, torch.Tensor]:
        return self._encode(("text", view, source, 0.0))

    def memo(self, key: tuple, encode: Callable[[dict], dict]) -> dict[str, torch.Tensor]:
        """Outputs of a tower call an objective makes itself (say with a MIM mask), once per batch.

        ``encode(batch)`` gets this memo's batch and returns (B, ...) tensors; gradient accumulation
        splices them like every other tower output. ``key`` must be unique to the caller.
        """
        if key not in self._cache:
            self._cache[key] = encode(self.batch)
        return self._cache[key]

    def _batch_statistics(self, tower: str) -> bool:
        """Whether ``tower`` holds BatchNorm in training mode (its outputs depend on the call's batch)."""
        if not hasattr(self, "_bn"):
            self._bn: dict[str, bool] = {}
        if tower not in self._bn:
            in_image = lambda name: name == "visual" or name.startswith("visual.")  # noqa: E731
            self._bn[tower] = any(
                isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
                for name, m in self.model.named_modules()
                if in_image(name) == (tower == "image") or not hasattr(self.model, "visual")
            )
        return self._bn[tower]

    def _dropout(self, patch_dropout: float) -> float:
        return float(patch_dropout) if self.model.training else 0.0

    def _input(self, tower: str, view: str, source: str) -> tuple[torch.Tensor, tuple[int, ...]]:
        """The view's tensor flattened to one item per row, and its leading shape (B,) or (B, V)."""
        x = self.batch[source][view]
        if tower == "text" and x.ndim == 3:
            x = x[:, 0]  # (B, 2, L) [ids; labels] -> (B, L)
        lead = tuple(x.shape[:-3] if tower == "image" else x.shape[:-1])  # (B,) or (B, V)
        return x.reshape(-1, *x.shape[len(lead) :]), lead  # (B * V, ...)

    def _run(self, tower: str, flat: torch.Tensor, patch_dropout: float) -> dict[str, torch.Tensor]:
        if tower == "image":
            out = (
                self.model.image_outputs(flat, patch_dropout)
                if patch_dropout
                else self.model.image_outputs(flat)
            )
        else:
            out = self.model.text_outputs(flat)
        out["features"] = F.normalize(out["embed"], dim=-1)  # (N, D), unit length
        return out

    def _encode(self, key: tuple[str, str, str, float]) -> dict[str, torch.Tensor]:
        if key not in self._cache:
            tower, view, source, patch_dropout = key
            flat, lead = self._input(tower, view, source)
            out = self._run(tower, flat, patch_dropout)
            self._cache[key] = {k: v.reshape(*lead, *v.shape[1:]) for k, v in out.items()}
        return self._cache[key]

    def prefetch(self, requests: list[Request]) -> None:
        """Encode every requested view not yet cached, one tower call per group of same-shape views."""
        groups: dict[tuple, list[tuple]] = {}
        for tower, view, source, patch_dropout in requests:
            key = (tower, view, source, self._dropout(patch_dropout))
            x = self.batch.get(source, {}).get(view)
            if key in self._cache or not isinstance(x, torch.Tensor) or tower not in ("image", "text"):
                continue
            if (tower == "image" and x.ndim < 4) or (tower == "text" and x.ndim not in (2, 3)):
                continue
            flat, lead = self._input(tower, view, source)
            group = (tower, tuple(flat.shape[1:]), flat.dtype, key[3])
            if self._batch_statistics(tower):  # BatchNorm in training mode: one call per view
                group = (*group, key)
            if all(k != key for k, _, _ in groups.get(group, [])):
                groups.setdefault(group, []).append((key, flat, lead))
        for (tower, _, _, patch_dropout, *_), members in groups.items():
            flat = (
                torch.cat([f for _, f, _ in members]) if len(members) > 1 else members[0][1]
            )  # (sum N, ...)
            out = self._run(tower, flat, patch_dropout)
            sizes = [f.shape[0] for _, f, _ in members]
            parts = {k: v.split(sizes) for k, v in out.items()}
            for i, (key, _, lead) in enumerate(members):
                self._cache[key] = {k: v[i].reshape(*lead, *v[i].shape[1:]) for k, v in parts.items()}


class Objective(nn.Module):
    """Base class: subclasses implement :meth:`reads` and :meth:`forward`; the rest has defaults.

    Constructor keyword arguments are the objective's whole configuration; the recipe YAML passes
    them through and unknown ones are errors. ``source`` names the batch entry the views come from.
    """

    has_head: ClassVar[bool] = False  # True: inference_state() is saved under ``heads``

    def __init__(self, model: nn.Module, source: str = "pairs"):
        super().__init__()
        self.source = source
        self.step, self.total_steps = 0, 0  # set_progress: where training stands

    # -- where training stands -------------------------------------------------------------------
    def set_progress(self, step: int, total_steps: int) -> None:
        """Called by the training loop before every step's forward with the optimizer steps done so
        far (0 at the first step; restored on resume) and the run's planned total (the schedule's
        length, as the learning rate's). Outside training (evaluation, a bare forward) it stays 0."""
        if total_steps < 0 or step < 0:
            raise ValueError(f"set_progress needs step >= 0 and total_steps >= 0, got {step}, {total_steps}")
        self.step, self.total_steps = int(step), int(total_steps)

    @property
    def progress(self) -> float:
        """``step / total_steps`` in [0, 1] (0 before training or when the total is unknown)."""
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    start_fraction: float = 0.0  # set by the recipe from the objective's ``start_fraction`` entry

    @property
    def span_progress(self) -> float:
        """Progress through this objective's own part of training, ``(progress - start_fraction) /
        (1 - start_fraction)`` clamped to [0, 1]: schedules of an objective switched on late (an EMA
        teacher's momentum, a temperature warm-up) run over the steps it trains."""
        start = self.start_fraction
        return min(1.0, max(0.0, (self.progress - start) / (1.0 - start)))

    # -- configuration ---------------------------------------------------------------------------
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Option names and their defaults (``inspect.Parameter.empty`` where there is none)."""
        options: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is nn.Module or not issubclass(klass, Objective):
                continue
            for p in list(inspect.signature(klass.__init__).parameters.values())[2:]:
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                    options[p.name] = p.default
        return options

    @classmethod
    def resolve(cls, options: dict) -> dict[str, Any]:
        """``options`` completed with the defaults (an option without a default is left out)."""
        out = {k: v for k, v in cls.defaults().items() if v is not inspect.Parameter.empty}
        out.update(options)
        return out

    @classmethod
    def prepare(cls, options: dict, ctx: RunContext) -> dict:
        """Options filled from the run before the objective is built (default: as given).

        ``options`` are the configured ones (without ``weight`` and ``type``); return a new dict. The
        run's config is left as written, so a checkpoint's config shows what the user asked for.
        """
        return dict(options)

    # -- what it reads ---------------------------------------------------------------------------
    def reads(self) -> list[Read]:
        """The views this objective reads, in the order it encodes them."""
        raise NotImplementedError(f"{type(self).__name__} must declare the views it reads in reads()")

    def needs(self) -> dict[str, list[str]]:
        """Views the data pipeline must build for this objective, per source."""
        out: dict[str, list[str]] = {}
        for read in self.reads():
            views = out.setdefault(read.source, [])
            if read.view not in views:
                views.append(read.view)
        return out

    def requests(self) -> list[Request]:
        """The shared tower inputs it will ask for, so :meth:`Encoded.prefetch` can batch them."""
        return [(r.tower, r.view, r.source, r.patch_dropout) for r in self.reads() if r.tower and r.memo]

    def towers(self) -> set[str]:
        """The towers its views go through."""
        return {r.tower for r in self.reads() if r.tower}

    # -- training --------------------------------------------------------------------------------
    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def tower_parameters(self) -> list[nn.Parameter]:
        """Own parameters fed into a tower call (a MIM mask token): they get their gradient per
        micro-batch under gradient accumulation, like the model's, and are not divided by k."""
        return []

    def may_leave_unused(self) -> bool:
        """Whether a step can leave some of this objective's trainable parameters without a gradient
        (DDP must then look for unused parameters). Default: no."""
        return False

    @torch.no_grad()
    def post_step(self) -> None:
        """Called after every optimizer step."""

    # -- after training --------------------------------------------------------------------------
    def export_state(self) -> dict[str, torch.Tensor]:
        """Tensors that belong beside the towers in the open_clip-layout model (``synclip export``),
        e.g. ``{"logit_scale": ...}``; the first objective of a recipe to give a key wins."""
        return {}

    def load_exported(self, exported: dict[str, torch.Tensor]) -> list[str]:
        """Start from what published weights keep beside the towers (``logit_scale``, ``logit_bias``):
        every key of :meth:`export_state` held by a parameter of the same name is copied from
        ``exported`` (the inverse of exporting). Returns the keys taken."""
        taken = []
        for key in self.export_state():
            param = getattr(self, key, None)
            if key in exported and isinstance(param, nn.Parameter) and param.numel() == exported[key].numel():
                with torch.no_grad():
                    param.copy_(exported[key].reshape(param.shape).to(param.dtype))
                taken.append(key)
        return taken

    def inference_state(self) -> dict[str, Any] | None:
        """What :meth:`inference_head` needs to rebuild this objective's head at inference, or None.

        Default: the objective's own state dict when ``has_head`` is set. Checkpoints save it under
        ``heads.<name>`` with the objective's type and options.
        """
        return dict(self.state_dict()) if self.has_head else None

    @classmethod
    def inference_head(cls, options: dict[str, Any], state: dict[str, Any]) -> nn.Module:
        """The head served as ``model.heads[name]``, from resolved ``options`` and the saved state."""
        raise NotImplementedError(f"objective {cls.__name__} has no inference head")


class TemperatureObjective(Objective):
    """An objective with CLIP's learnable temperature (Radford et al. 2021).

    ``logit_scale`` is the log of the multiplier, initialised to ``log(init_logit_scale)`` (1/0.07) and
    clamped to ``[log(min_logit_scale), log(max_logit_scale)]`` ([0, log 100] by default, CLIP's clamp)
    after every optimizer step. The parameter keeps the name ``logit_scale`` so that the recipe can
    export it with the towers in open_clip's layout.

    ``temperature_of`` names another temperature objective of the recipe whose ``logit_scale`` this
    one uses (one parameter, one clamp: the owner's), as DeCLIP shares one temperature across its
    contrastive terms; :class:`synclip.recipe.Recipe` ties them after building every objective.
    """

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        init_logit_scale: float = 1 / 0.07,
        max_logit_scale: float = 100.0,
        learn_logit_scale: bool = True,
        min_logit_scale: float = 1.0,
        temperature_of: str | None = None,
    ):
        super().__init__(model, source)
        if not 0 < min_logit_scale <= max_logit_scale:
            raise ValueError(
                f"min_logit_scale must be positive and at most max_logit_scale, got {min_logit_scale}"
            )
        self.min_log_scale, self.max_log_scale = math.log(min_logit_scale), math.log(max_logit_scale)
        self.temperature_of = temperature_of
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(init_logit_scale)), requires_grad=learn_logit_scale
        )

    def share_temperature(self, owner: TemperatureObjective) -> None:
        """Use ``owner``'s ``logit_scale`` parameter (and its clamp) from now on."""
        self.logit_scale = owner.logit_scale
        self.min_log_scale, self.max_log_scale = owner.min_log_scale, owner.max_log_scale

    def scale(self) -> torch.Tensor:
        """The multiplier of the cosine similarities, ``exp(logit_scale)``."""
        return self.logit_scale.exp()

    def crops(self, enc: Encoded, view: str) -> torch.Tensor:
        """Unit image features of ``view`` as (B, V, D): one crop per sample becomes V = 1."""
        images = enc.image(view, self.source)["features"]  # (B, V, D) or (B, D)
        return images.unsqueeze(1) if images.ndim == 2 else images

    @torch.no_grad()
    def post_step(self) -> None:
        self.logit_scale.clamp_(self.min_log_scale, self.max_log_scale)

    def export_state(self) -> dict[str, torch.Tensor]:
        return {"logit_scale": self.logit_scale.detach()}


def objective_options(name: str) -> dict[str, object]:
    """Option names of a registered objective and their defaults (``inspect.Parameter.empty`` if none)."""
    return OBJECTIVES.get(name).defaults()
