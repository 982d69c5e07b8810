"""The ``classifier`` eval task: a checkpoint's trained classification head (the ``classifier`` recipe's
cosine classifier) scored on Fashion-MNIST from the cached image features, and skipped with a reason
when the model has no head or the head does not know every class of a set."""

import pytest
import torch
import torch.nn.functional as F

from counting import CountingModel
from synclip.api import load
from synclip.cli import main
from synclip.data.sources.labelled import FASHION_MNIST_CLASSES, fashion_mnist
from synclip.eval import fashion_mnist as fm
from synclip.eval.classifier_head import NO_HEAD, choose_head
from synclip.eval.run import default_tasks, evaluate
from synclip.eval.task_data import TaskSkipped, spread
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.objectives.classify import ClassifierHead, Classify

pytestmark = pytest.mark.skipif(fm.available() is not None, reason="dataset-fashion-mnist is not installed")

N_TEST = 500  # test images, spread evenly over the 10,000


@pytest.fixture(scope="module")
def head_checkpoint(tmp_path_factory, one_thread):
    """The classifier recipe on micro-vit-32: 40 steps of 64 Fashion-MNIST training images."""
    out = tmp_path_factory.mktemp("runs")
    overrides = {
        "model.name": "micro-vit-32",
        "data.workers": 0,
        "train.batch_size": 64,
        "train.max_steps": 40,
        "train.warmup_steps": 2,
        "train.lr": 2e-3,
        "train.weight_decay": 0.0,
        "train.out_dir": str(out),
        "train.name": "head",
        "train.progress": "false",
        "train.log_every": 20,
        "eval.at_end": "false",
    }
    assert main(["train", "classifier", *(f"{k}={v}" for k, v in overrides.items())]) == 0
    return out / "head" / "checkpoint.pt"


def test_head_scores_fashion_mnist_as_its_objective_does(head_checkpoint):
    model = load(head_checkpoint)
    head = model.heads["classify"]
    assert head.vocabulary == sorted(FASHION_MNIST_CLASSES)  # the data set's own class names
    assert head.temperature == 0.05 and head.weight.shape == (10, model.embed_dim)

    counting = CountingModel(model)
    counting.heads = model.heads
    tasks = ["fashion_mnist", "classifier"]
    result = evaluate(counting, model.preprocess, model.tokenizer, tasks=tasks, limit=N_TEST)
    assert counting.seen["images"] == N_TEST  # the zero-shot task's features, encoded once for both
    entry = result["tasks"]["classifier/fashion_mnist"]
    assert entry["kind"] == "classifier" and entry["head"]["objective"] == "classify"
    assert entry["classes"] == FASHION_MNIST_CLASSES and entry["templates"] is None
    assert entry["chance"] == {"top1": 0.1, "top5": 0.5, "mean_per_class_recall": 0.1}
    assert entry["metrics"]["top1"] > 0.4, entry["metrics"]  # chance 0.1; measured 0.574
    for digits in ("classifier/mnist5k", "classifier/digits"):  # not trained on digits
        assert "lacks ['zero', 'one'" in result["skipped"][digits]

    # by hand: the objective itself, rebuilt from the checkpoint, on the same test images
    recipe_state = read_synclip_checkpoint(head_checkpoint)["recipe"]
    prefix = "objectives.classify."
    objective = Classify(model, vocabulary=head.vocabulary, temperature=0.05)
    objective.load_state_dict(
        {k.removeprefix(prefix): v for k, v in recipe_state.items() if k.startswith(prefix)}
    )
    test = fashion_mnist("test")
    index = spread(len(test), N_TEST)
    images = torch.stack([model.preprocess(test[i]["image"]) for i in index])  # (500, 3, H, W)
    with torch.no_grad():
        logits = objective.logits(F.normalize(model.encode_image(images), dim=-1))  # (500, 10)
    truth = objective.ids([test[i]["class_name"] for i in index], logits.device)  # (500,)
    accuracy = (logits.argmax(-1) == truth).float().mean().item()
    assert entry["metrics"]["top1"] == pytest.approx(accuracy, abs=1e-6)


def test_clip_checkpoint_skips_the_task_with_a_reason(untrained_checkpoint, tmp_path):
    model = load(untrained_checkpoint(tmp_path / "clip.pt"))
    assert model.heads == {}
    assert "classifier" in default_tasks()[0]  # cheap: on by default, skipped where it cannot run
    counting = CountingModel(model)
    result = evaluate(counting, model.preprocess, model.tokenizer, tasks=["classifier"], limit=50)
    assert result["tasks"] == {} and counting.seen["images"] == 0
    assert result["skipped"]["classifier/fashion_mnist"] == NO_HEAD
    assert set(result["skipped"]) == {"classifier/fashion_mnist", "classifier/mnist5k", "classifier/digits"}


def test_vocabulary_without_a_class_skips_naming_it(untrained_checkpoint, tmp_path):
    model = load(untrained_checkpoint(tmp_path / "clip.pt"))
    vocabulary = [c for c in sorted(FASHION_MNIST_CLASSES) if c != "bag"]
    weight = torch.randn(len(vocabulary), model.embed_dim)  # (9, D)
    model.heads = {"classify": ClassifierHead(vocabulary, weight, 0.05)}
    result = evaluate(model, model.preprocess, model.tokenizer, tasks=["classifier"], limit=50)
    assert "classifier/fashion_mnist" not in result["tasks"]
    reason = result["skipped"]["classifier/fashion_mnist"]
    assert "fashion_mnist" in reason and "lacks ['bag']" in reason and "9 entities" in reason


def test_first_head_that_knows_every_class_is_used():
    heads = {
        "entities": ClassifierHead(["cat", "dog"], torch.zeros(2, 4), 0.05),
        "labels": ClassifierHead(["bird", "dog", "cat"], torch.zeros(3, 4), 0.1),
    }
    assert choose_head(heads, ["cat", "dog"], "pets") == ("entities", [0, 1])
    assert choose_head(heads, ["cat", "bird"], "pets") == ("labels", [2, 0])
    with pytest.raises(TaskSkipped, match=r"'entities' \(2 entities\) lacks \['fish'\]"):
        choose_head(heads, ["cat", "fish"], "pets")
