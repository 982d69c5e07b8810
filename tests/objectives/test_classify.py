"""The ``classify`` objective (MOFI's entity classifier): vocabularies built from the run's sources,
out-of-vocabulary entities ignored, the vocabulary saved with the checkpoint, and learning on
Fashion-MNIST."""

import pytest
import torch
import torch.nn.functional as F

from synclip.config import load_config
from synclip.data.collate import collate
from synclip.data.sources.labelled import fashion_mnist
from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views
from synclip.models import create_model
from synclip.objectives.base import RunContext
from synclip.objectives.classify import Classify
from synclip.recipe import Pretrainer, Recipe


def _context(cfg):
    return RunContext(cfg.views, cfg.data.sources).named("classify")


def test_out_of_vocabulary_entities_are_ignored(micro_model, make_batch):
    batch = make_batch(micro_model, ["image", "entity"], n=8)  # captions: mahjong red dragon, joker, ...
    vocab = ["joker", "not an emoji", "mahjong red dragon"]
    objective = Classify(micro_model, vocabulary=vocab)
    out = Pretrainer(micro_model, Recipe(micro_model, {"classify": {"vocabulary": vocab}}))
    objective.load_state_dict(out.recipe.objectives["classify"].state_dict())
    result = out(batch)
    image = F.normalize(micro_model.encode_image(batch["pairs"]["image"][:2]), dim=-1)  # (2, D)
    expected = F.cross_entropy(objective.logits(image), torch.tensor([2, 0]))  # only rows 0, 1 count
    assert result["classify_loss"].item() == pytest.approx(expected.item(), abs=1e-5)
    assert result["classify_in_vocabulary"].item() == pytest.approx(2 / 8)

    none = Recipe(micro_model, {"classify": {"vocabulary": ["not an emoji"]}})
    loss = Pretrainer(micro_model, none)(batch)["classify_loss"]
    assert loss.item() == 0.0
    loss.backward()  # still differentiable: a batch without known entities does not break a step


def test_vocabulary_is_built_from_the_source_at_setup(emoji_subset, tmp_path):
    overrides = [
        f"data.sources={{pairs: {{kind: csv, path: {emoji_subset}, caption_key: caption}}}}",
        "model.name=micro-vit-32",
    ]
    cfg = load_config("mofi", overrides)
    assert cfg.objectives["classify"].get("vocabulary") is None
    vocab = Classify.prepare(cfg.objectives["classify"], _context(cfg))["vocabulary"]
    captions = [line.split("\t")[1] for line in emoji_subset.read_text().splitlines()[1:]]
    assert vocab == sorted({c.lower() for c in captions}) and "mahjong red dragon" in vocab  # normalise: true
    assert cfg.objectives["classify"].get("vocabulary") is None  # the config stays as written
    path = tmp_path / "vocab.txt"
    path.write_text("joker\nmahjong red dragon\n")
    cfg = load_config("mofi", [*overrides, f"objectives.classify.vocabulary={path}"])
    recipe = Recipe(create_model("micro-vit-32"), cfg.objectives, _context(cfg))
    assert recipe.objectives["classify"].vocabulary == ["joker", "mahjong red dragon"]
    cfg = load_config("mofi", [*overrides, "objectives.classify.source=labels"])
    with pytest.raises(ValueError, match="data.sources has only"):
        Recipe(create_model("micro-vit-32"), cfg.objectives, _context(cfg))


def test_vocabulary_round_trips_through_a_checkpoint(tmp_path):
    vocab = ["ankle boot", "bag", "coat"]
    torch.manual_seed(0)
    recipe = Recipe(create_model("micro-vit-32"), {"classify": {"vocabulary": vocab}})
    torch.save(recipe.state_dict(), tmp_path / "recipe.pt")
    state = torch.load(tmp_path / "recipe.pt", weights_only=True)
    # a run whose data now lists the entities in another order gets the checkpoint's ids back
    resumed = Recipe(
        create_model("micro-vit-32"), {"classify": {"vocabulary": ["coat", "bag", "ankle boot"]}}
    )
    resumed.load_state_dict(state)
    objective = resumed.objectives["classify"]
    assert objective.vocabulary == vocab
    assert objective.ids(["coat", "bag", "shoe"], torch.device("cpu")).tolist() == [2, 1, -100]
    assert torch.equal(objective.weight, recipe.objectives["classify"].weight)
    smaller = Recipe(create_model("micro-vit-32"), {"classify": {"vocabulary": ["bag", "coat"]}})
    with pytest.raises(RuntimeError, match="3 entities but this run's has 2|size mismatch"):
        smaller.load_state_dict(state)


def test_classify_alone_learns_fashion_mnist():
    """640 training images, 40 steps of 64: well above the 10% chance on 500 held-out test images."""
    torch.manual_seed(0)
    model = create_model("micro-vit-32")
    views = make_views({"image": {"size": model.image_size}, "entity": {}}, get_tokenizer(16), train=False)
    train, test = fashion_mnist("train"), fashion_mnist("test")
    tr = collate([{**views(train[i]), "key": i} for i in range(640)])
    te = collate([{**views(test[i]), "key": i} for i in range(500)])
    recipe = Recipe(model, {"classify": {"source": "labels", "vocabulary": sorted(train.classes)}})
    pretrainer = Pretrainer(model, recipe).train()
    optimizer = torch.optim.AdamW(pretrainer.parameters(), lr=2e-3, weight_decay=0.0)
    for step in range(40):
        rows = slice((step % 10) * 64, (step % 10 + 1) * 64)
        out = pretrainer({"labels": {"image": tr["image"][rows], "entity": tr["entity"][rows]}})
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    objective = recipe.objectives["classify"]
    with torch.no_grad():
        image = F.normalize(model.eval().encode_image(te["image"]), dim=-1)  # (500, D)
        accuracy = (objective.logits(image).argmax(-1) == objective.ids(te["entity"], image.device)).float()
    assert accuracy.mean().item() > 0.4, accuracy.mean()  # measured 0.576
