"""The objective interface and the per-step encoding memo.

An objective is one small module: it names the views it reads (and the source they come from), owns
its heads, temperatures and state (so they land under ``recipe.<name>.*`` in checkpoints), and returns
``{"loss": ..., **metrics}``. ``post_step`` runs after each optimizer step (clamps, queue updates, EMA).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from synclip.registry import OBJECTIVES


class Encoded:
    """Memo of tower outputs for one batch: a view is encoded once, whoever asks for it.

    A view of shape (B, V, C, H, W) (V crops per sample) goes through the tower in one (B * V) call;
    its outputs come back as (B, V, ...).
    """

    def __init__(self, model: nn.Module, batch: dict):
        self.model = model
        self.batch = batch
        self._cache: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}

    def image(self, view: str = "image", source: str = "pairs") -> dict[str, torch.Tensor]:
        return self._encode("image", view, source)

    def text(self, view: str = "text", source: str = "pairs") -> dict[str, torch.Tensor]:
        return self._encode("text", view, source)

    def _encode(self, tower: str, view: str, source: str) -> dict[str, torch.Tensor]:
        key = (tower, source, view)
        if key not in self._cache:
            x = self.batch[source][view]
            lead = x.shape[:-3] if tower == "image" else x.shape[:-1]  # (B,) or (B, V)
            flat = x.reshape(-1, *x.shape[len(lead) :])  # (B * V, ...)
            fn = self.model.image_outputs if tower == "image" else self.model.text_outputs
            out = fn(flat)
            out["features"] = F.normalize(out["embed"], dim=-1)  # (B * V, D), unit length
            self._cache[key] = {k: v.reshape(*lead, *v.shape[1:]) for k, v in out.items()}
        return self._cache[key]


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

    @torch.no_grad()
    def post_step(self) -> None:
        """Called after every optimizer step."""


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
