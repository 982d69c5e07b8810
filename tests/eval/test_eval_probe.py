import math
from collections import Counter

import numpy as np
import pytest
import torch

from counting import CountingModel
from synclip.data.sources.labelled import FASHION_MNIST_DIR
from synclip.eval import fashion_mnist as fm
from synclip.eval.knn import knn_classify, knn_votes
from synclip.eval.linear_probe import adamw_probe, lbfgs_probe, linear_probe, validation_split
from synclip.eval.run import evaluate


def _separable(n: int, d: int = 16, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, d) points around ``c`` fixed random centres (the same for every seed), labelled by centre:
    centres 3 apart from the origin, noise 0.3 per dimension, so the classes are linearly separable."""
    centres = 3 * torch.nn.functional.normalize(
        torch.randn(c, d, generator=torch.Generator().manual_seed(0)), dim=1
    )
    y = torch.arange(n) % c  # (n,) balanced
    x = centres[y] + 0.3 * torch.randn(n, d, generator=torch.Generator().manual_seed(100 + seed))  # (n, d)
    return x, y


def _random_labels(n: int, d: int = 16, c: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("protocol", ["lbfgs", "adamw"])
def test_probe_recovers_a_linearly_separable_problem(protocol):
    if protocol == "lbfgs":
        pytest.importorskip("sklearn")
    train_x, train_y = _separable(400, seed=0)
    test_x, test_y = _separable(200, seed=1)
    out = linear_probe(train_x.numpy(), train_y.numpy(), test_x, test_y, 4, protocol=protocol)
    assert out["metrics"]["top1"] >= 0.98
    assert out["metrics"]["mean_per_class_recall"] >= 0.98
    assert out["metrics"]["top5"] is None  # only 4 classes
    assert out["settings"]["protocol"] == protocol
    assert out["settings"]["n_fit"] + out["settings"]["n_val"] == 400
    key = "C" if protocol == "lbfgs" else "weight_decay"
    assert out["chosen"][key] in [row[key] for row in out["sweep"]]


@pytest.mark.parametrize("protocol", ["lbfgs", "adamw"])
def test_probe_is_near_chance_on_random_labels(protocol):
    if protocol == "lbfgs":
        pytest.importorskip("sklearn")
    train_x, train_y = _random_labels(400, seed=1)
    test_x, test_y = _random_labels(400, seed=2)
    out = linear_probe(train_x, train_y, test_x, test_y, 4, protocol=protocol)
    assert 0.1 < out["metrics"]["top1"] < 0.4  # chance is 0.25; 400 test labels: sd ~0.02


def test_lbfgs_sweep_is_coarse_to_fine_and_reports_top5():
    pytest.importorskip("sklearn")
    x, y = _separable(300, c=6, seed=3)
    out = lbfgs_probe(x[:200], y[:200], x[200:], y[200:], 6, refine=2)
    cs = [row["C"] for row in out["sweep"]]
    assert len(cs) == 7 + 2 * 2 and cs == sorted(cs)  # 7 decades, then 2 new values per refinement
    assert min(cs) == pytest.approx(1e-3) and max(cs) <= 1e3 * 10**0.75
    assert out["metrics"]["top5"] == pytest.approx(1.0)


def test_adamw_probe_is_deterministic_and_full_batch_works():
    x, y = _separable(200, seed=4)
    a = adamw_probe(x[:150], y[:150], x[150:], y[150:], 4, weight_decays=(0.0, 1e-2), epochs=5, seed=3)
    b = adamw_probe(x[:150], y[:150], x[150:], y[150:], 4, weight_decays=(0.0, 1e-2), epochs=5, seed=3)
    assert a == b
    full = adamw_probe(x[:150], y[:150], x[150:], y[150:], 4, batch_size=None, epochs=20)
    assert full["settings"]["batch_size"] is None and full["metrics"]["top1"] >= 0.95


def test_validation_split_is_seeded_and_disjoint():
    fit, val = validation_split(10, 0.2, seed=5)
    assert len(val) == 2 and sorted(fit.tolist() + val.tolist()) == list(range(10))
    assert torch.equal(val, validation_split(10, 0.2, seed=5)[1])
    assert not torch.equal(val, validation_split(10, 0.5, seed=6)[1][:2])
    with pytest.raises(ValueError, match="at least 2"):
        validation_split(1, 0.2, seed=0)


def test_unknown_protocol_is_an_error():
    with pytest.raises(ValueError, match="known: lbfgs, adamw"):
        linear_probe(torch.randn(4, 2), [0, 1, 0, 1], torch.randn(2, 2), [0, 1], protocol="sgd")


# kNN on a hand-computed case: 4 unit training points in 2-D, 2 queries.
TRAIN_X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.8, 0.6]])
TRAIN_Y = torch.tensor([0, 1, 2, 1])


def test_knn_on_a_hand_computed_case():
    queries = np.array([[1.0, 0.05], [-0.6, 0.8]])  # unnormalised on purpose
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ TRAIN_X.numpy().T  # (2, 4)
    votes = knn_votes(TRAIN_X, TRAIN_Y, queries, num_classes=3, k=3)
    # query 0: neighbours 0 (class 0), 3 and 1 (class 1). Two class-1 votes, but the nearest one wins:
    # exp(0.9988 / 0.07) = 1.6e6 against exp(0.83 / 0.07) + exp(0.05 / 0.07) = 1.4e5
    expected0 = [math.exp(sims[0, 0] / 0.07), math.exp(sims[0, 3] / 0.07) + math.exp(sims[0, 1] / 0.07), 0.0]
    # query 1: neighbours 1 (class 1, 0.8), 2 (class 2, 0.6), 3 (class 1, 0.0); class 0 is 4th
    expected1 = [0.0, math.exp(sims[1, 1] / 0.07) + math.exp(sims[1, 3] / 0.07), math.exp(sims[1, 2] / 0.07)]
    assert torch.allclose(votes, torch.tensor([expected0, expected1], dtype=torch.float32), rtol=1e-4)
    out = knn_classify(TRAIN_X, TRAIN_Y, queries, [0, 2], num_classes=3, k=3)
    assert votes.argmax(dim=1).tolist() == [0, 1]
    assert out["metrics"]["top1"] == 0.5 and out["metrics"]["mean_per_class_recall"] == 0.5
    assert out["chosen"] == {"k": 3, "temperature": 0.07}
    # a hot temperature makes the votes nearly equal: the two class-1 neighbours outvote the nearest
    assert knn_votes(TRAIN_X, TRAIN_Y, queries, num_classes=3, k=3, temperature=100.0)[0].argmax() == 1
    # k larger than the training set uses every training point
    assert knn_classify(TRAIN_X, TRAIN_Y, queries, [0, 1], num_classes=3, k=20)["chosen"]["k"] == 4


needs_fashion_mnist = pytest.mark.skipif(
    fm.available() is not None or not (FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz").is_file(),
    reason="Debian dataset-fashion-mnist is not installed",
)


@needs_fashion_mnist
def test_probe_task_subsets_and_shares_the_zero_shot_test_images():
    task = fm.probe_task("knn", limit=None, n_train=500, n_test=300, seed=1)
    assert len(task.train_images) == len(task.train_labels) == 500
    assert task.train_set == "fashion_mnist/train/500/seed1" and task.test_set == "fashion_mnist/test/300"
    assert task.test_set == fm.fashion_mnist_task(limit=300).image_set
    assert task.test_labels == fm.fashion_mnist_task(limit=300).labels
    assert task.data["n_train"] == 500 and task.data["n_test"] == 300 and task.data["train_of"] == 60_000
    assert len(set(task.train_labels)) == 10 and max(Counter(task.train_labels).values()) < 80
    other = fm.probe_task("knn", n_train=500, seed=2)
    assert other.train_images.index != task.train_images.index  # the seed picks the subset
    assert task.train_images.index == fm.probe_task("knn", n_train=500, seed=1).train_images.index
    capped = fm.probe_task("knn", limit=50)
    assert (
        capped.data["n_train"] == capped.data["n_test"] == 50 and capped.test_set == "fashion_mnist/test/50"
    )


@needs_fashion_mnist
def test_probe_tasks_end_to_end_encode_each_collection_once(clip_model, preprocess, tokenize):
    pytest.importorskip("sklearn")
    model = CountingModel(clip_model)
    tasks = ["fashion_mnist", "linear_probe", "knn"]
    result = evaluate(model, preprocess, tokenize, tasks=tasks, limit=80, batch_size=64)
    assert model.seen["images"] == 80 + 80  # the test images shared by three tasks, the train images by two
    assert set(result["tasks"]) == {"fashion_mnist", "linear_probe/fashion_mnist", "knn/fashion_mnist"}
    lp, knn = result["tasks"]["linear_probe/fashion_mnist"], result["tasks"]["knn/fashion_mnist"]
    assert lp["kind"] == "linear_probe" and knn["kind"] == "knn"
    assert lp["probe"]["settings"]["protocol"] == "lbfgs" and lp["probe"]["chosen"]["C"] > 0
    assert knn["probe"]["chosen"] == {"k": 20, "temperature": 0.07}
    for entry in (lp, knn):
        assert entry["chance"] == {"top1": 0.1, "top5": 0.5, "mean_per_class_recall": 0.1}
        assert entry["data"]["n_train"] == entry["data"]["n_test"] == 80
        assert set(entry["metrics"]) == set(entry["chance"])
        assert all(0.0 <= v <= 1.0 for v in entry["metrics"].values())
    assert result["skipped"] == {}


def test_a_probe_left_with_one_training_image_is_skipped(clip_model, preprocess, tokenize):
    if fm.available() is not None:
        pytest.skip("Debian dataset-fashion-mnist is not installed")
    result = evaluate(clip_model, preprocess, tokenize, tasks=["knn"], limit=1)
    assert result["tasks"] == {} and "limit" in result["skipped"]["knn/fashion_mnist"]
