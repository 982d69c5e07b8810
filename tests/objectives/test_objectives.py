"""Every registered objective and every shipped recipe: views exist, one forward/backward on a real
emoji batch gives a finite loss, gradients reach every trainable parameter, and state (BatchNorm
statistics, queues) changes only in training mode."""

import pytest
import torch

from small_options import shrink
from synclip.config import from_dict, list_recipes, load_config
from synclip.data.sources import build_source
from synclip.models import create_model
from synclip.objectives.base import RunContext
from synclip.recipe import Pretrainer, Recipe
from synclip.registry import OBJECTIVES, VIEWS


def _state(module):
    """Persistent buffers (running statistics, queues); a constant causal mask is not state."""
    saved = module.state_dict()
    return {k: v.clone() for k, v in module.named_buffers() if k in saved}


def _check(recipe_objectives, view_cfgs, make_batch, sources=None):
    """``sources``: the recipe's data.sources other than ``pairs`` (which is the emoji subset)."""
    torch.manual_seed(0)
    model = create_model("micro-vit-32")
    sources = {"pairs": {"kind": "emoji"}, **(sources or {})}
    raw = {"objectives": shrink(recipe_objectives), "views": view_cfgs, "data": {"sources": sources}}
    cfg = from_dict(raw)
    recipe = Recipe(model, cfg.objectives, RunContext(cfg.views, cfg.data.sources))  # as in training
    for views in recipe.views().values():
        assert all(v in VIEWS for v in views), views
    batch = {
        name: make_batch(
            model, views, view_cfgs, source=None if name == "pairs" else build_source(name, sources[name])
        )["pairs"]
        for name, views in recipe.views().items()
    }
    pretrainer = Pretrainer(model, recipe)
    pretrainer.set_progress(99, 100)  # the last step: objectives switched on late (start_fraction) run too

    before = _state(recipe)
    pretrainer.eval()
    with torch.no_grad():
        pretrainer(batch)
    after_eval = _state(recipe)
    assert all(torch.equal(before[k], after_eval[k]) for k in before), "state changed in eval mode"

    pretrainer.train()
    out = pretrainer(batch)
    assert torch.isfinite(out["loss"]), out
    out["loss"].backward()
    pretrainer.post_step()
    for name, p in recipe.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"no gradient reaches {name}"
            assert p.grad.abs().sum() > 0, f"zero gradient at {name}"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    after_train = _state(recipe)
    if before:  # BatchNorm running statistics, queues
        assert any(not torch.equal(before[k], after_train[k]) for k in before), "state never updated"
    return out


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective(name, make_batch):
    out = _check({name: {"weight": 1.0}}, {}, make_batch)
    assert f"{name}_loss" in out


@pytest.mark.parametrize("recipe", sorted(list_recipes()))
def test_every_recipe(recipe, make_batch):
    cfg = load_config(recipe)
    others = {k: v for k, v in cfg.data.sources.items() if k != "pairs"}
    out = _check(cfg.objectives, cfg.views, make_batch, others)
    for name in cfg.objectives:
        assert f"{name}_loss" in out  # every component is logged


def test_any_mix_works_slip_plus_nclip(make_batch):
    out = _check({"clip": {}, "simclr": {"weight": 0.5}, "nclip": {"weight": 0.5}}, {}, make_batch)
    assert {"clip_loss", "simclr_loss", "nclip_loss", "nclip_usage", "nclip_batch_entropy"} <= set(out)
