"""UniCL on a mixed batch (emoji pairs + Fashion-MNIST labels), and the unicl / mofi / classifier recipes
training a few steps from the command line, with the classifier vocabulary kept through resume and load."""

import json
import random

import pytest
import torch

from run_helpers import small_run_overrides
from synclip.api import load
from synclip.cli import main
from synclip.data.collate import collate
from synclip.data.sources import CsvImageText
from synclip.data.sources.labelled import FASHION_MNIST_CLASSES, fashion_mnist
from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.losses import unicl_loss
from synclip.models import create_model
from synclip.recipe import Pretrainer, Recipe


def _batch(model, source, names, n, seed=0):
    views = make_views({v: ({"size": model.image_size} if v == "image" else {}) for v in names},
                       get_tokenizer(model.context_length), train=True)  # fmt: skip
    items = []
    for i in range(n):
        random.seed(seed + i)
        torch.manual_seed(seed + i)
        items.append({**views(source[i]), "key": i})
    return collate(items)


def test_unicl_mixes_pairs_and_labels_in_one_contrast(emoji_subset):
    torch.manual_seed(0)
    model = create_model("micro-vit-32")
    recipe = Recipe(model, {"unicl": {"sources": {"pairs": "text", "labels": "text_prompt"}}})
    assert recipe.views() == {
        "pairs": ["image", "text", "target"],
        "labels": ["image", "text_prompt", "target"],
    }
    objective = recipe.objectives["unicl"]
    assert {(v, s) for _, v, s, _ in objective.requests()} == {
        ("image", "pairs"),
        ("text", "pairs"),
        ("image", "labels"),
        ("text_prompt", "labels"),
    }
    batch = {
        "pairs": _batch(
            model, CsvImageText(emoji_subset, caption_key="caption"), recipe.views()["pairs"], 12
        ),
        "labels": _batch(model, fashion_mnist("test"), recipe.views()["labels"], 6),
    }
    out = Pretrainer(model, recipe).train()(batch)
    # the same loss by hand: 12 caption rows then 6 label rows, positives = equal targets
    with torch.no_grad():
        image = torch.cat(
            [model.encode_image(batch[s]["image"], normalize=True) for s in ("pairs", "labels")]
        )
        text = torch.cat([model.encode_text(batch["pairs"]["text"], normalize=True),
                          model.encode_text(batch["labels"]["text_prompt"], normalize=True)])  # fmt: skip
        targets = torch.cat([batch["pairs"]["target"], batch["labels"]["target"]])
        expected = unicl_loss(image, text, targets, objective.scale())
    assert out["unicl_loss"].item() == pytest.approx(expected["loss"].item(), abs=1e-5)
    labels = fashion_mnist("test").labels[:6].tolist()
    positives = (12 + sum(labels.count(y) for y in labels)) / 18  # captions unique, classes repeat
    assert out["unicl_positives"].item() == pytest.approx(positives) and positives > 1
    out["loss"].backward()
    assert objective.logit_scale.grad is not None


def _run(tmp_path, tsv, recipe, *extra):
    overrides = small_run_overrides(tsv, tmp_path / "runs", **{"train.max_steps": 3, "train.name": recipe})
    overrides = [o for o in overrides if not o.startswith("data.sources=")]
    assert main(["train", recipe, *overrides, *extra]) == 0
    run_dir = tmp_path / "runs" / recipe
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return run_dir, rows


def test_unicl_recipe_trains_on_emoji_pairs_plus_fashion_mnist(emoji_subset, tmp_path):
    run_dir, rows = _run(
        tmp_path, emoji_subset, "unicl",
        f"data.sources.pairs={{kind: csv, path: {emoji_subset}, caption_key: caption, batch_size: 24}}",
        "data.sources.labels.batch_size=8",
    )  # fmt: skip
    assert rows[-1]["step"] == 3 and all(r["loss"] == r["loss"] for r in rows)  # finite
    assert rows[-1]["unicl_positives"] > 1  # 8 Fashion-MNIST images share 10 classes


def test_mofi_recipe_trains_clip_plus_entity_classifier(emoji_subset, tmp_path):
    run_dir, rows = _run(
        tmp_path,
        emoji_subset,
        "mofi",
        f"data.sources.pairs={{kind: csv, path: {emoji_subset}, caption_key: caption}}",
    )
    assert rows[-1]["step"] == 3 and {"clip_loss", "classify_loss", "classify_in_vocabulary"} <= set(rows[-1])
    assert rows[-1]["classify_in_vocabulary"] == 1.0  # min_count 1: every entity of the source is a class


def test_classifier_recipe_keeps_its_vocabulary_through_resume_and_load(emoji_subset, tmp_path):
    run_dir, _ = _run(tmp_path, emoji_subset, "classifier", "data.sources.labels.split=test")
    vocabulary = sorted(FASHION_MNIST_CLASSES)
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    assert state["recipe"]["objectives.classify._extra_state"] == {"vocabulary": vocabulary}
    assert load(run_dir / "checkpoint.pt").heads["classify"].vocabulary == vocabulary
    _, rows = _run(tmp_path, emoji_subset, "classifier", "data.sources.labels.split=test",
                   "train.max_steps=4", "train.resume=auto")  # fmt: skip
    assert rows[-1]["step"] == 4
    resumed = read_synclip_checkpoint(run_dir / "checkpoint.pt")["recipe"]
    assert resumed["objectives.classify._extra_state"] == {"vocabulary": vocabulary}


def test_labelled_sources_can_train_with_the_names_evaluation_prompts_with():
    from synclip.config import load_config
    from synclip.data.sources import build_source
    from synclip.eval.fashion_mnist import CLASS_NAMES

    spec = load_config("unicl").data.sources["labels"]
    assert spec["classes"] == CLASS_NAMES  # UniCL trains on the words its zero-shot test prompts with
    source = build_source("labels", spec)
    sample = source[int((source.labels == 1).nonzero()[0][0])]
    assert (sample["label"], sample["class_name"]) == (1, "jeans")
    with pytest.raises(ValueError, match=r"must list 10 names \(or lists of synonyms\) in label order"):
        build_source("labels", {"kind": "fashion_mnist", "classes": ["jeans"]})
