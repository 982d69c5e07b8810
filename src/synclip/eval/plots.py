"""Pictures of an evaluation a researcher looks at: zero-shot confusion matrices and retrieval grids.

- Confusion matrix: rows are true classes, columns predicted classes (top-1 of the prompt-ensemble
  logits), each row divided by its class's image count, so the diagonal is per-class recall.
- Retrieval grid: a few text queries spread evenly over the captions, each with its top-5 images by
  cosine similarity (CLIP's qualitative retrieval figures), a green frame on a true match, red otherwise;
  for image-to-image retrieval each row starts with the query image.

Both are PNGs drawn with matplotlib's Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from synclip.eval.features import _as_image
from synclip.eval.image_sets import Subset, spread

MAX_TICK_LABELS = 40  # more classes than this: the matrix is drawn without class names


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(logits: torch.Tensor, labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """(N, C) logits, (N,) true labels -> (C, C) counts: [true class, predicted class]."""
    predicted = logits.argmax(dim=1)  # (N,)
    truth = torch.as_tensor(list(labels), dtype=torch.long)  # (N,)
    flat = truth * num_classes + predicted  # (N,) row-major cell index
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def top_k_images(scores: torch.Tensor, queries: Sequence[int], k: int = 5) -> torch.Tensor:
    """(T, I) text-image scores -> (Q, k) image indices, best first, for the text rows ``queries``."""
    return scores[list(queries)].topk(min(k, scores.shape[1]), dim=1).indices  # (Q, k)


def plot_confusion(counts: torch.Tensor, class_names: Sequence[str], path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix as a PNG; class names on the axes up to MAX_TICK_LABELS classes."""
    plt = _pyplot()
    c = len(class_names)
    rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp(min=1)  # (C, C) rows sum to 1 or 0
    side = min(14.0, max(5.0, 2.5 + 0.28 * c))  # inches
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    shown = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if c <= MAX_TICK_LABELS:
        ax.set_xticks(range(c), list(class_names), rotation=90, fontsize=7)
        ax.set_yticks(range(c), list(class_names), fontsize=7)
    accuracy = counts.diagonal().sum().item() / max(1, counts.sum().item())
    ax.set_title(f"{title}: top-1 {100 * accuracy:.1f}%, {c} classes", fontsize=10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_retrieval_grid(
    images: Sequence,
    captions: Sequence[str],
    scores: torch.Tensor,
    positives: torch.Tensor,
    path: str | Path,
    title: str,
    n_queries: int = 6,
    k: int = 5,
    query_images: Sequence | None = None,
) -> Path:
    """One row per query (``n_queries`` spread evenly over ``captions``): its top-``k`` images.

    ``scores`` and ``positives`` are (Q, I), ``captions[q]`` titles query q; ``images[i]`` is a PIL
    image or a dataset item holding one. With ``query_images`` (image-to-image retrieval), each row
    starts with the query image itself, framed grey.
    """
    plt = _pyplot()
    queries = spread(len(captions), n_queries)
    chosen = top_k_images(scores, queries, k)  # (n_queries, k)
    lead = 0 if query_images is None else 1  # a column for the query image
    rows, cols = chosen.shape[0], chosen.shape[1] + lead
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for row, (t, picks) in enumerate(zip(queries, chosen.tolist())):
        cells = ([(query_images[t], None)] if lead else []) + [(images[i], i) for i in picks]
        for col, (image, i) in enumerate(cells):
            ax = axes[row][col]
            ax.imshow(_as_image(image))
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "tab:gray" if i is None else ("tab:green" if bool(positives[t, i]) else "tab:red")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
            ax.set_xlabel("query" if i is None else f"{scores[t, i].item():.2f}", fontsize=7)
            if col == 0:
                caption = captions[t] if len(captions[t]) <= 40 else captions[t][:37] + "..."
                ax.set_title(f"“{caption}”", fontsize=8, loc="left")
    query = "image" if lead else "text"
    fig.suptitle(
        f"{title}: top-{chosen.shape[1]} images per query {query} (green: a true match)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def plot_name(kind: str, task: str) -> str:
    """``confusion`` + ``head_noun/twemoji`` -> ``confusion_head_noun_twemoji.png``."""
    return f"{kind}_{task.replace('/', '_')}.png"


def confusion_plot(evaluator, name: str, task, out_dir: str | Path) -> list[Path]:
    """A zero-shot task's (task_data.Classification) confusion matrix, from the features ``evaluator``
    (evaluator.Evaluator) has cached."""
    counts = confusion_matrix(evaluator.zero_shot_logits(task), task.labels, len(task.class_names))
    return [plot_confusion(counts, task.class_names, _folder(out_dir) / plot_name("confusion", name), name)]


def retrieval_plot(evaluator, name: str, task, out_dir: str | Path) -> list[Path]:
    """A text-image retrieval task's (task_data.Retrieval) grid of captions and their top images."""
    scores = evaluator.retrieval_scores(task)  # (T, I)
    path = _folder(out_dir) / plot_name("retrieval_grid", name)
    return [plot_retrieval_grid(task.images, task.captions, scores, task.positives, path, name)]


def image_retrieval_plot(evaluator, name: str, task, out_dir: str | Path) -> list[Path]:
    """An image-image retrieval task's (task_data.ImageRetrieval) grid, each row led by its query image."""
    scores = evaluator.image_retrieval_scores(task)  # (Q, G)
    path = _folder(out_dir) / plot_name("retrieval_grid", name)
    queries = Subset(task.query_images, task.query_index)  # read lazily: only plotted rows load
    return [
        plot_retrieval_grid(
            task.gallery_images, task.query_names, scores, task.positives, path, name, query_images=queries
        )
    ]


def _folder(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
