"""DeCLIP as its code trains it (issue 19): the one-direction NN loss, NN top-k, one shared temperature."""

import math

import torch
import torch.nn.functional as F

from synclip.objectives import Encoded
from synclip.recipe import Recipe


def _batch(model, b=4, crops=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    s, length = model.image_size, model.context_length
    return {
        "pairs": {
            "image_ssl": torch.randn(b, crops, 3, s, s, generator=g),
            "text": torch.randint(1, 1000, (b, length), generator=g),
            "text_eda": torch.randint(1, 1000, (b, length), generator=g),
        }
    }


def test_nn_loss_is_the_image_to_neighbour_cross_entropy_only(micro_model):
    """DeCLIP's solver: criterion(logits_per_image_nn, logits_per_image_nn_aug), image -> NN text only."""
    recipe = Recipe(micro_model, {"nearest_neighbour": {"queue_size": 16}})
    objective = recipe.objectives["nearest_neighbour"]
    bank = F.normalize(
        torch.randn(16, micro_model.embed_dim, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    objective.queue.push(bank, gather=False)
    batch = _batch(micro_model)
    recipe.eval()
    with torch.no_grad():
        enc = Encoded(micro_model, batch)
        loss = objective(enc, batch)["loss"]
        images = enc.image("image_ssl")["features"]  # (B, 2, D)
        scale = objective.logit_scale.exp()
        expected = []
        for v in range(2):
            for view in ("text", "text_eda"):
                text = F.normalize(enc.text(view)["features"], dim=-1)
                nn_text = bank[(text @ bank.T).argmax(-1)]  # (B, D)
                logits = scale * images[:, v] @ nn_text.T  # (B, B)
                expected.append(F.cross_entropy(logits, torch.arange(4)))
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-6)
    symmetric = Recipe(micro_model, {"nearest_neighbour": {"queue_size": 16, "symmetric": True}})
    symmetric.objectives["nearest_neighbour"].queue.push(bank, gather=False)
    symmetric.eval()
    with torch.no_grad():
        other = symmetric.objectives["nearest_neighbour"](Encoded(micro_model, batch), batch)["loss"]
    assert not torch.allclose(other, loss)


def test_nn_topk_averages_one_block_per_neighbour_rank(micro_model):
    recipe = Recipe(micro_model, {"nearest_neighbour": {"queue_size": 16, "topk": 3, "text_views": ["text"]}})
    objective = recipe.objectives["nearest_neighbour"]
    bank = F.normalize(
        torch.randn(16, micro_model.embed_dim, generator=torch.Generator().manual_seed(2)), dim=-1
    )
    objective.queue.push(bank, gather=False)
    batch = _batch(micro_model, crops=1)
    recipe.eval()
    with torch.no_grad():
        enc = Encoded(micro_model, batch)
        loss = objective(enc, batch)["loss"]
        image = enc.image("image_ssl")["features"][:, 0]  # (B, D)
        text = F.normalize(enc.text("text")["features"], dim=-1)
        index = (text @ bank.T).topk(3, dim=-1).indices  # (B, 3)
        scale = objective.logit_scale.exp()
        expected = torch.stack(
            [F.cross_entropy(scale * image @ bank[index[:, j]].T, torch.arange(4)) for j in range(3)]
        ).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_declip_recipe_shares_one_clamped_temperature_and_eda_has_no_insertion():
    from synclip.config import load_config
    from synclip.data.views import resolve_view
    from synclip.train.setup import build_pretrainer

    cfg = load_config("declip", ["train.device=cpu"])
    cfg.objectives = {
        name: {**opts, **({"queue_size": 16} if name == "nearest_neighbour" else {})}
        for name, opts in cfg.objectives.items()
    }
    recipe = build_pretrainer(cfg).recipe
    mv, nn = recipe.objectives["multiview_clip"], recipe.objectives["nearest_neighbour"]
    assert nn.logit_scale is mv.logit_scale  # one parameter, as DeCLIP's one logit_scale
    with torch.no_grad():
        mv.logit_scale.fill_(1.0)
    recipe.post_step()
    assert math.isclose(float(nn.logit_scale.detach()), 3.0, rel_tol=1e-6)  # DeCLIP's clamp: min 3
    with torch.no_grad():
        mv.logit_scale.fill_(9.0)
    recipe.post_step()
    assert math.isclose(float(mv.logit_scale.detach()), math.log(100), rel_tol=1e-6)
    _, eda = resolve_view("text_eda", cfg.views["text_eda"])
    assert sorted(eda["ops"]) == ["rd", "rs", "sr"]  # DeCLIP: choice([sr, rs, rd]), no random insertion


def test_temperature_of_must_name_another_temperature_objective(micro_model):
    import pytest

    with pytest.raises(ValueError, match="temperature_of"):
        Recipe(micro_model, {"clip": {"temperature_of": "mlm"}, "mlm": {}})
    recipe = Recipe(micro_model, {"clip": {}, "other": {"type": "clip", "temperature_of": "clip"}})
    params = [p for _, p in recipe.named_parameters()]
    assert sum(p is recipe.objectives["clip"].logit_scale for p in params) == 1  # the optimizer sees it once
