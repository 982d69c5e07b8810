"""The objective interface and the per-step encoding memo.

An objective is one small module: it names the views it reads (and the source they come from), owns
its heads, temperatures and state (so they land under ``recipe.<name>.*`` in checkpoints), and returns
``{"loss": ..., **metrics}``. ``post_step`` runs after each optimizer step (clamps, queue updates, EMA).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from synclip.registry import OBJECTIVES

Request = tuple[str, str, str, float]  # (tower, view, source, patch dropout)


def tower_of(view: str) -> str | None:
    """The tower a view goes through, from its name: ``image*`` -> image, ``text*`` -> text."""
    if view.startswith("image"):
        return "image"
    if view.startswith("text"):
        return "text"
    return None


class Encoded:
    """Memo of tower outputs for one batch: a view is encoded once, whoever asks for it.

    A view of shape (B, V, C, H, W) (V crops per sample) goes through the tower in one (B * V) call;
    its outputs come back as (B, V, ...). Text views are token ids (B, L); a (B, 2, L) text view
    carries ``[ids; MLM labels]`` (``text_mlm``) and is encoded from its ids.

    :meth:`prefetch` encodes many views at once: views with the same per-item shape (and the same
    patch dropout) are concatenated into one tower call, e.g. ``image`` (B, 3, H, W) and
    ``image_ssl`` (B, N, 3, H, W) go through the image tower as one (B + B * N) batch.
    Patch dropout is applied only while the model is in training mode.
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
            if all(k != key for k, _, _ in groups.get(group, [])):
                groups.setdefault(group, []).append((key, flat, lead))
        for (tower, _, _, patch_dropout), members in groups.items():
            flat = (
                torch.cat([f for _, f, _ in members]) if len(members) > 1 else members[0][1]
            )  # (sum N, ...)
            out = self._run(tower, flat, patch_dropout)
            sizes = [f.shape[0] for _, f, _ in members]
            parts = {k: v.split(sizes) for k, v in out.items()}
            for i, (key, _, lead) in enumerate(members):
                self._cache[key] = {k: v[i].reshape(*lead, *v[i].shape[1:]) for k, v in parts.items()}


class Objective(nn.Module):
    """Base class. Subclasses set ``views`` and implement ``forward(enc, batch) -> dict``.

    Constructor keyword arguments are the objective's whole configuration; the recipe YAML passes
    them through and unknown ones are errors. ``source`` names the batch entry the views come from.
    """

    views: tuple[str, ...] = ()

    def __init__(self, model: nn.Module, source: str = "pairs"):
        super().__init__()
        self.source = source

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def needs(self) -> dict[str, list[str]]:
        """Views this objective reads, per source; one source by default (UniCL reads several)."""
        return {self.source: list(self.views)}

    def requests(self) -> list[Request]:
        """The tower inputs this objective will ask for, so :meth:`Encoded.prefetch` can batch them."""
        dropout = getattr(self, "patch_dropout", 0.0)
        ssl_views = getattr(self, "patch_dropout_views", ())
        out = []
        for source, views in self.needs().items():
            for view in views:
                tower = tower_of(view)
                if tower:
                    out.append((tower, view, source, dropout if view in ssl_views else 0.0))
        return out

    def tower_parameters(self) -> list[nn.Parameter]:
        """Own parameters fed into a tower call (a MIM mask token): they get their gradient per
        micro-batch under gradient accumulation, like the model's, and are not divided by k."""
        return []

    @torch.no_grad()
    def post_step(self) -> None:
        """Called after every optimizer step."""


class TemperatureObjective(Objective):
    """An objective with CLIP's learnable temperature (Radford et al. 2021).

    ``logit_scale`` is the log of the multiplier, initialised to ``log(init_logit_scale)`` (1/0.07) and
    clamped at ``log(max_logit_scale)`` (100) after every optimizer step. The parameter keeps the name
    ``logit_scale`` so that the recipe can export it with the towers in open_clip's layout.
    """

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        init_logit_scale: float = 1 / 0.07,
        max_logit_scale: float = 100.0,
        learn_logit_scale: bool = True,
    ):
        super().__init__(model, source)
        self.max_log_scale = math.log(max_logit_scale)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(init_logit_scale)), requires_grad=learn_logit_scale
        )

    def scale(self) -> torch.Tensor:
        """The multiplier of the cosine similarities, ``exp(logit_scale)``."""
        return self.logit_scale.exp()

    def crops(self, enc: Encoded, view: str) -> torch.Tensor:
        """Unit image features of ``view`` as (B, V, D): one crop per sample becomes V = 1."""
        images = enc.image(view, self.source)["features"]  # (B, V, D) or (B, D)
        return images.unsqueeze(1) if images.ndim == 2 else images

    @torch.no_grad()
    def post_step(self) -> None:
        self.logit_scale.clamp_(0, self.max_log_scale)


def objective_options(name: str) -> dict[str, object]:
    """Option names of a registered objective and their defaults (``inspect.Parameter.empty`` if none)."""
    cls = OBJECTIVES.get(name)
    options: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass is nn.Module or not issubclass(klass, Objective):
            continue
        for p in list(inspect.signature(klass.__init__).parameters.values())[2:]:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                options[p.name] = p.default
    return options
