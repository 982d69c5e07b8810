import itertools
import math
import random

import pytest
import torch

from synclip.eval.metrics import (
    average_precision,
    chance_average_precision,
    chance_mean_per_class_recall,
    chance_recall_at_k,
    chance_top_k,
    classification_chance,
    classification_metrics,
    image_retrieval_chance,
    image_retrieval_metrics,
    retrieval_chance,
    retrieval_metrics,
)


def test_classification_metrics_on_a_hand_computed_case():
    logits = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0, rank 1
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # label 0, rank 2
            [0.0, 0.0, 0.9, 0.1, 0.0, 0.0],  # label 2, rank 1
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 5, rank 6: outside the top 5
        ]
    )
    m = classification_metrics(logits, torch.tensor([0, 0, 2, 5]))
    assert m["top1"] == pytest.approx(2 / 4)
    assert m["top5"] == pytest.approx(3 / 4)
    # recall of each class present: class 0 -> 1/2, class 2 -> 1, class 5 -> 0 (sklearn balanced accuracy)
    assert m["mean_per_class_recall"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_mean_per_class_recall_matches_sklearn_balanced_accuracy():
    sklearn = pytest.importorskip("sklearn.metrics")
    logits, labels = torch.randn(200, 7), torch.randint(0, 7, (200,))
    expected = sklearn.balanced_accuracy_score(labels.numpy(), logits.argmax(1).numpy())
    assert classification_metrics(logits, labels)["mean_per_class_recall"] == pytest.approx(expected)


def test_top5_is_none_with_fewer_than_five_classes():
    m = classification_metrics(torch.eye(3), torch.arange(3))
    assert m == {"top1": 1.0, "top5": None, "mean_per_class_recall": 1.0}
    assert classification_chance(3) == {"top1": 1 / 3, "top5": None, "mean_per_class_recall": 1 / 3}
    assert classification_chance(20)["top5"] == pytest.approx(5 / 20)
    assert chance_top_k(5, 5) == 1.0 and chance_mean_per_class_recall(4) == 0.25


def test_retrieval_on_a_3x3_case_with_known_ranks():
    # one caption per image (identity positives); rows are texts, columns images
    scores = torch.tensor(
        [
            [0.9, 0.5, 0.1],  # text 0: images ranked 0, 1, 2 -> positive at rank 1
            [0.8, 0.7, 0.2],  # text 1: ranked 0, 1, 2 -> positive at rank 2
            [0.6, 0.3, 0.0],  # text 2: ranked 0, 1, 2 -> positive at rank 3
        ]
    )
    m = retrieval_metrics(scores, torch.eye(3, dtype=torch.bool), ks=(1, 2, 3))
    assert m["text_to_image_R@1"] == pytest.approx(1 / 3)
    assert m["text_to_image_R@2"] == pytest.approx(2 / 3)
    assert m["text_to_image_R@3"] == 1.0
    # columns: image 0 ranks texts 0, 1, 2 (rank 1); image 1 ranks 1, 0, 2 (rank 1); image 2 ranks 1, 0, 2 (rank 3)
    assert m["image_to_text_R@1"] == pytest.approx(2 / 3)
    assert m["image_to_text_R@2"] == pytest.approx(2 / 3)
    assert m["image_to_text_R@3"] == 1.0


def test_retrieval_with_several_captions_per_image_and_several_images_per_caption():
    # 3 texts, 4 images. text 0 describes images 0 and 2 (two images per caption);
    # image 3 is described by texts 1 and 2 (two captions per image); text 1 also describes image 1.
    positives = torch.tensor(
        [
            [True, False, True, False],
            [False, True, False, True],
            [False, False, False, True],
        ]
    )
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.3],  # text 0 ranks 1, 2, 3, 0: first positive (2) at rank 2
            [0.8, 0.2, 0.1, 0.3],  # text 1 ranks 0, 3, 1, 2: first positive (3) at rank 2
            [0.2, 0.1, 0.3, 0.9],  # text 2 ranks 3 first: hit at rank 1
        ]
    )
    m = retrieval_metrics(scores, positives, ks=(1, 2))
    assert m["text_to_image_R@1"] == pytest.approx(1 / 3)
    assert m["text_to_image_R@2"] == 1.0
    # image 0: texts ranked 1, 2, 0 -> positive text 0 at rank 3
    # image 1: ranked 0, 1, 2 -> positive text 1 at rank 2
    # image 2: ranked 0, 2, 1 -> positive text 0 at rank 1
    # image 3: ranked 2, 1, 0 -> positives 2 and 1 at ranks 1 and 2: a hit at 1
    assert m["image_to_text_R@1"] == pytest.approx(2 / 4)
    assert m["image_to_text_R@2"] == pytest.approx(3 / 4)


def test_retrieval_rejects_queries_without_positives():
    with pytest.raises(ValueError, match="at least one positive"):
        retrieval_metrics(torch.rand(2, 2), torch.tensor([[True, False], [True, False]]))


def test_chance_recall_is_the_hypergeometric_formula():
    for n, p, k in [(10, 1, 1), (10, 3, 5), (3953, 1, 10), (3953, 5, 10), (7, 7, 3), (4, 1, 10)]:
        expected = 1 - math.comb(n - p, min(k, n)) / math.comb(n, min(k, n))
        assert chance_recall_at_k(n, p, k) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert chance_recall_at_k(100, 1, 1) == pytest.approx(1 / 100)
    assert chance_recall_at_k(5, 1, 10) == 1.0  # k >= n: everything is retrieved


def test_retrieval_chance_matches_monte_carlo():
    rng = random.Random(0)
    positives = torch.zeros(6, 20, dtype=torch.bool)
    for t in range(6):
        for i in rng.sample(range(20), t % 3 + 1):  # 1-3 images per caption
            positives[t, i] = True
    for i in range(20):
        if not positives[:, i].any():
            positives[rng.randrange(6), i] = True
    exact = retrieval_chance(positives, ks=(1, 5))
    gen = torch.Generator().manual_seed(0)
    trials = [retrieval_metrics(torch.rand(6, 20, generator=gen), positives, ks=(1, 5)) for _ in range(4000)]
    for key, value in exact.items():
        assert sum(t[key] for t in trials) / len(trials) == pytest.approx(value, abs=0.015), key


def test_classification_chance_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 50 + [1] * 5 + list(range(2, 12)))  # imbalanced, 12 classes
    trials = [classification_metrics(torch.rand(len(labels), 12, generator=gen), labels) for _ in range(1000)]
    for key, value in classification_chance(12).items():
        assert sum(t[key] for t in trials) / len(trials) == pytest.approx(value, abs=0.01), key


def test_average_precision_on_hand_computed_rankings():
    scores = torch.tensor(
        [
            [0.9, 0.8, 0.7, 0.6],  # positives at ranks 2 and 4: (1/2 + 2/4) / 2
            [0.1, 0.2, 0.3, 0.4],  # ranked 3, 2, 1, 0; positive 3 at rank 1
            [0.5, 0.5, 0.5, 0.5],  # ties keep column order: positive 2 at rank 3
        ]
    )
    positives = torch.tensor(
        [[False, True, False, True], [False, False, False, True], [False, False, True, False]]
    )
    assert average_precision(scores, positives).tolist() == pytest.approx([0.5, 1.0, 1 / 3])
    m = image_retrieval_metrics(scores[:2], positives[:2], ks=(1, 2))  # no ties: top-k is unambiguous
    assert m["mAP"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["image_to_image_R@1"] == pytest.approx(1 / 2) and m["image_to_image_R@2"] == 1.0


def test_image_retrieval_needs_a_positive_per_query_but_not_per_gallery_image():
    distractor = torch.tensor([[True, False, False]])  # gallery images 1 and 2 match no query
    assert image_retrieval_metrics(torch.tensor([[0.1, 0.9, 0.0]]), distractor, ks=(1,))["mAP"] == 0.5
    with pytest.raises(ValueError, match="every query image needs at least one positive"):
        image_retrieval_metrics(torch.rand(2, 3), torch.tensor([[True, False, False], [False] * 3]))


@pytest.mark.parametrize("n", [1, 2, 5, 6])
def test_chance_average_precision_is_the_mean_over_every_ranking(n):
    for p in range(1, n + 1):
        positives = torch.tensor([[i < p for i in range(n)]])  # (1, n)
        aps = [
            average_precision(torch.tensor([list(order)], dtype=torch.float32), positives).item()
            for order in itertools.permutations(range(n))
        ]
        assert chance_average_precision(n, p) == pytest.approx(sum(aps) / len(aps), rel=1e-6), (n, p)
    assert chance_average_precision(3953, 1) == pytest.approx(sum(1 / r for r in range(1, 3954)) / 3953)
    with pytest.raises(ValueError):
        chance_average_precision(3, 0)


def test_image_retrieval_chance_matches_monte_carlo():
    positives = torch.zeros(5, 12, dtype=torch.bool)
    for q in range(5):
        positives[q, q : q + q % 3 + 1] = True  # 1-3 positives per query, some gallery images unmatched
    exact = image_retrieval_chance(positives, ks=(1, 5))
    gen = torch.Generator().manual_seed(0)
    trials = [
        image_retrieval_metrics(torch.rand(5, 12, generator=gen), positives, (1, 5)) for _ in range(4000)
    ]
    for key, value in exact.items():
        assert sum(t[key] for t in trials) / len(trials) == pytest.approx(value, abs=0.015), key
