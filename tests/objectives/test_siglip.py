"""The ``siglip`` objective: the paper's initialisation, the loss of its own parameters, and its learned
bias through checkpoint, ``synclip.load``, export into open_clip (same sigmoid probabilities) and the
zero-shot report."""

import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

from run_helpers import small_run_overrides
from synclip.api import load
from synclip.cli import main
from synclip.config import load_config
from synclip.eval.run import evaluate
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.losses import siglip_loss
from synclip.recipe import Pretrainer, Recipe
from synclip.train.loop import train


def test_starts_at_the_papers_temperature_and_bias_and_scores_its_views(micro_model, make_batch):
    recipe = Recipe(micro_model, {"siglip": {}})
    objective = recipe.objectives["siglip"]
    assert objective.logit_scale.item() == pytest.approx(math.log(10))  # t' = log 10
    assert objective.logit_bias.item() == -10.0
    assert set(objective.export_state()) == {"logit_scale", "logit_bias"}
    batch = make_batch(micro_model, ["image", "text"], n=8)
    out = Pretrainer(micro_model, recipe)(batch)
    image = F.normalize(micro_model.encode_image(batch["pairs"]["image"]), dim=-1)
    text = F.normalize(micro_model.encode_text(batch["pairs"]["text"]), dim=-1)
    expected = siglip_loss(image, text, torch.tensor(10.0), torch.tensor(-10.0))["loss"]
    assert out["siglip_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    out["loss"].backward()
    assert objective.logit_bias.grad is not None and objective.logit_scale.grad is not None


def test_bias_survives_checkpoint_load_and_export_into_open_clip(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 3, "train.lr": 0.05})
    run_dir = train(load_config("siglip", overrides))
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    bias = state["recipe"]["objectives.siglip.logit_bias"]
    assert bias.item() != -10.0  # it learned
    assert torch.equal(state["model"]["logit_bias"], bias) and state["exported"] == [
        "logit_bias",
        "logit_scale",
    ]

    model = load(run_dir / "checkpoint.pt")
    assert torch.equal(model.exported["logit_bias"], bias)
    out = tmp_path / "siglip_open_clip.pt"
    assert main(["export", str(run_dir / "checkpoint.pt"), str(out)]) == 0
    theirs = open_clip.create_model("micro-vit-32", pretrained=str(out), init_logit_bias=-10.0).eval()
    assert theirs.logit_bias.item() == bias.item()

    images = torch.randn(3, 3, model.image_size, model.image_size)
    texts = model.tokenizer(["a red apple", "a dog", "a smiling face"])
    with torch.no_grad():
        ours = torch.sigmoid(
            model.logit_scale_value
            * F.normalize(model.encode_image(images), dim=-1)
            @ F.normalize(model.encode_text(texts), dim=-1).T
            + model.exported["logit_bias"]
        )  # (3, 3)
        image_f, text_f, scale, b = theirs(images, texts)  # open_clip's SigLIP outputs
        reference = torch.sigmoid(scale * image_f @ text_f.T + b)  # open_clip's SigLIP probabilities
    assert torch.allclose(ours, reference, atol=1e-6)


def test_zero_shot_reports_sigmoid_probabilities_for_a_model_with_a_bias(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 1})
    model = load(train(load_config("siglip", overrides)) / "checkpoint.pt")
    result = evaluate(model, model.preprocess, model.tokenizer, tasks=["category"], limit=40)
    report = result["tasks"]["category/twemoji"]["sigmoid"]
    assert 0.0 < report["true_class_mean"] < 1.0 and report["logit_bias"] == pytest.approx(
        float(model.exported["logit_bias"])
    )
    assert set(report["per_class"]) <= set(result["tasks"]["category/twemoji"]["classes"])
    model.exported = {k: v for k, v in model.exported.items() if k != "logit_bias"}  # a CLIP model
    plain = evaluate(model, model.preprocess, model.tokenizer, tasks=["category"], limit=40)
    assert "sigmoid" not in plain["tasks"]["category/twemoji"]
