"""DeCLIP's optional text SimSiam: the EDA and MLM views of a caption through the image SimSiam heads."""

import pytest
import torch
import torch.nn.functional as F

from small_options import shrink
from synclip.config import load_config
from synclip.losses import simsiam_loss
from synclip.models import create_model
from synclip.objectives.base import Encoded, RunContext
from synclip.recipe import Recipe

VIEWS = ["text_mlm", "text_eda"]


def test_declip_option_shares_the_image_simsiam_heads_and_matches_the_hand_computed_loss(make_batch):
    declip = load_config("declip", ["objectives.text_simsiam.weight=0.2"])
    assert "text_simsiam" not in load_config("declip").objectives  # off by default, as DeCLIP's configs
    model = create_model("micro-vit-32")
    objectives = shrink(declip.objectives)
    del objectives["text_simsiam"]["heads_of"]  # small heads, but the default sharing
    recipe = Recipe(model, objectives, RunContext(declip.views, declip.data.sources))
    text, image = recipe.objectives["text_simsiam"], recipe.objectives["simsiam"]
    assert text.projector is image.projector and text.predictor is image.predictor  # DeCLIP's shared heads
    assert recipe.weights["text_simsiam"] == 0.2
    batch = make_batch(model, ["image", *VIEWS], declip.views)["pairs"]
    recipe.train()
    enc = Encoded(model, {"pairs": batch})
    out = text(enc, {"pairs": batch})
    ids = [
        batch[v][:, 0] if batch[v].ndim == 3 else batch[v] for v in VIEWS
    ]  # text_mlm: (B, 2, L) ids; labels
    t1, t2 = (F.normalize(model.text_outputs(x)["embed"], dim=-1) for x in ids)  # unit (B, D) each
    z1, z2 = image.projector(t1), image.projector(t2)
    expected = simsiam_loss(image.predictor(z1), image.predictor(z2), z1, z2)
    assert torch.allclose(out["loss"], expected, atol=1e-5)
    out["loss"].backward()
    assert model.token_embedding.weight.grad.abs().sum() > 0  # the text tower learns from it


def test_without_a_simsiam_objective_the_error_says_what_to_do():
    model = create_model("micro-vit-32")
    with pytest.raises(ValueError, match="heads_of=null"):
        Recipe(model, {"clip": {}, "text_simsiam": {}})
    own = Recipe(model, {"clip": {}, "text_simsiam": {"heads_of": None, "proj_dim": 32, "pred_dim": 16}})
    assert own.objectives["text_simsiam"].projector[0].in_features == model.embed_dim
