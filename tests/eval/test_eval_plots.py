"""Confusion matrices and retrieval grids: the right numbers behind them, and real PNGs on disk."""

import torch
from PIL import Image

from synclip.eval.plots import confusion_matrix, plot_name, top_k_images
from synclip.eval.run import evaluate


def test_top_k_images_are_the_highest_scores_best_first():
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.3, 0.5, 0.2, 0.8, 0.0],
            [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
            [-1.0, 0.0, 2.0, -3.0, 4.0, 1.0, 3.0],
        ]
    )  # (T=3, I=7)
    assert top_k_images(scores, [0, 2], k=5).tolist() == [[1, 5, 3, 2, 4], [4, 6, 2, 5, 1]]
    assert top_k_images(scores, [1], k=5).tolist() == [[0, 1, 2, 3, 4]]
    assert top_k_images(scores[:, :3], [0], k=5).tolist() == [[1, 2, 0]]  # fewer images than k


def test_top_k_images_agree_with_sorting_every_row():
    scores = torch.randn(20, 50, generator=torch.Generator().manual_seed(0))  # (T, I), distinct values
    queries = [0, 7, 19]
    chosen = top_k_images(scores, queries)  # (3, 5)
    for row, t in zip(chosen.tolist(), queries):
        assert row == sorted(range(50), key=lambda i: -scores[t, i].item())[:5]


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 0, 5.0], [0, 5.0, 0]])  # (5, 3)
    counts = confusion_matrix(logits, [0, 1, 1, 2, 2], 3)
    assert counts.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_evaluate_draws_a_confusion_matrix_and_a_retrieval_grid(
    clip_model, preprocess, tokenize, emoji_corpus, tmp_path
):
    tasks = ["head_noun", "subcategory", "retrieval"]
    result = evaluate(
        clip_model, preprocess, tokenize, tasks=tasks, corpus_dir=emoji_corpus, limit=150, plots_dir=tmp_path
    )
    assert result["plots"]["retrieval/twemoji"] == [
        str(tmp_path / plot_name("retrieval_grid", "retrieval/twemoji"))
    ]
    expected = {
        "confusion_head_noun_twemoji.png": ((900, 1200), (800, 1050)),  # 24 classes, names on the axes
        "confusion_subcategory_openmoji.png": ((1400, 1600), (1300, 1450)),  # 54 classes: the capped size
        "retrieval_grid_retrieval_twemoji.png": ((650, 900), (900, 1100)),  # 6 queries x 5 images, 80 dpi
    }
    for name, ((w_lo, w_hi), (h_lo, h_hi)) in expected.items():
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and w_lo <= image.width <= w_hi and h_lo <= image.height <= h_hi, (
                name,
                image.size,
            )
    drawn = {p for paths in result["plots"].values() for p in paths}
    assert len(drawn) == 2 + 2 + 1 and all(p.endswith(".png") for p in drawn)


def test_no_plots_without_a_folder(clip_model, preprocess, tokenize, emoji_corpus):
    result = evaluate(
        clip_model, preprocess, tokenize, tasks=["retrieval"], corpus_dir=emoji_corpus, limit=40
    )
    assert "plots" not in result
