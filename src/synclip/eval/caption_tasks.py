"""Evaluation of a captioning decoder (``caption`` objective): captioning metrics and generative zero-shot.

- ``captioning/<style>``: greedy captions of the style's images (at most :data:`N_IMAGES`, spread
  evenly; ``limit`` lowers it), scored against each image's caption (its emoji name) by CIDEr-D and
  BLEU-4 (:mod:`synclip.eval.captioning`) and exact match (the same words after
  :func:`~synclip.eval.captioning.simple_tokenize`). Values are fractions like every other metric
  (CIDEr as computed, BLEU / 100), so tables show them x 100. The chance level (ours, exact and
  deterministic) is the score of *another image's* caption: image j gets the reference of image
  ``other_images(n)[j]``, a seeded derangement (no image keeps its own), so the level does not depend on
  the order of the set. (Taking the next image's caption, as a first version did, scores CIDEr 69 on the
  emoji corpus, whose neighbours share words.)
  ``data.constant_caption`` adds the score of always answering the most frequent reference (ties: the
  first in alphabetical order). A plot shows a few images with generated and reference captions.
- ``generative_zero_shot/<task>``: CapPa's zero-shot classification (Tschannen et al. 2023,
  https://arxiv.org/abs/2306.07915): every class prompt is scored by the decoder's summed
  log-likelihood given the image (:func:`~synclip.eval.captioning.generative_class_scores`), top-1 /
  top-5 / mean per-class recall with the zero-shot chance levels. The class sets are those of the
  contrastive ``category`` and ``head_noun`` tasks per emoji style and of ``fashion_mnist`` when it is
  installed (``subcategory``'s ~100 classes are left out: the decoder scores every class per image).
  The prompt is the bare class name (ours: the emoji captions are bare names, no "a photo of" to
  condition on). ``contrastive_top1`` / ``contrastive_top5`` are the contrastive zero-shot of the same
  model on the same images (the task's own templates), so the two read side by side.

Both are skipped with a reason when the model has no decoder (no caption head in ``model.heads``).
The decoder runs for every image (and every class), so each set is capped at :data:`N_IMAGES` images.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synclip.eval.captioning import bleu, cider, generative_class_scores, simple_tokenize
from synclip.eval.features import _as_image, eval_mode
from synclip.eval.image_sets import spread
from synclip.eval.metrics import classification_chance, classification_metrics
from synclip.eval.task_data import Classification, TaskSkipped
from synclip.objectives.caption import MIN_LEN, CaptionHead, caption_heads

N_IMAGES = 500  # images per set at most: greedy decoding and class scoring run the decoder per image
GENERATION_BATCH = 64  # images per generation call (logits are (B, t, V) every step)
N_EXAMPLES = 8  # generated captions kept in eval.json and drawn in the plot
MAX_LEN = 30  # open_clip CoCa.generate(seq_len=30), capped at the model's context length
NO_DECODER = (
    "the model has no captioning decoder (no caption head in model.heads): train a recipe with a "
    "caption objective (coca, cappa, siglip_caption) and load it with synclip.load"
)


def other_images(n: int, seed: int = 0) -> list[int]:
    """A seeded derangement of ``range(n)``: position j holds another image's index (n >= 2), the same
    on every call; ``[0]`` for a single image, which has no other."""
    if n < 2:
        return list(range(n))
    rng = random.Random(seed)
    order = list(range(n))
    while True:  # a uniform permutation is a derangement with probability ~1/e
        rng.shuffle(order)
        if all(k != j for j, k in enumerate(order)):
            return order


def decoder_head(model) -> tuple[str, CaptionHead]:
    """(name, head) of the model's first captioning decoder; :class:`TaskSkipped` when it has none."""
    heads = caption_heads(model)
    if not heads:
        raise TaskSkipped(NO_DECODER)
    return next(iter(heads.items()))


def _batch(evaluator, images: Sequence, index: Sequence[int]) -> torch.Tensor:
    return torch.stack([evaluator.preprocess(_as_image(images[i])) for i in index])  # (b, 3, H, W)


def caption_scores(references: dict, hypotheses: dict) -> dict[str, float]:
    """CIDEr-D, BLEU-4 (as a fraction) and exact match of ``{id: hyp}`` against ``{id: [refs]}``."""
    exact = [
        any(simple_tokenize(hypotheses[i]) == simple_tokenize(r) for r in references[i]) for i in references
    ]
    return {
        "cider": cider(references, hypotheses)[0],
        "bleu": bleu(references, hypotheses) / 100.0,
        "exact_match": sum(exact) / len(exact),
    }


@dataclass
class Captioning:
    """Greedy captions of ``images[index]`` scored against ``references`` (one list per image)."""

    images: Sequence  # the style's whole collection
    index: list[int]  # (N,) the images captioned
    references: list[list[str]]  # (N,) reference captions of each
    data: dict = field(default_factory=dict)
    generated: list[str] | None = None  # filled by score, drawn by plot

    def skip_reason(self) -> str | None:
        return None if self.index else "no images (is limit too small?)"

    def score(self, evaluator) -> dict:
        name, head = decoder_head(evaluator.model)
        model = evaluator.model
        max_len = min(MAX_LEN, int(model.context_length))
        out: list[str] = []
        with eval_mode(model):
            for start in range(0, len(self.index), GENERATION_BATCH):
                x = _batch(evaluator, self.images, self.index[start : start + GENERATION_BATCH])
                out += head.generate(model, x, method="greedy", max_len=max_len, min_len=MIN_LEN)
        self.generated = out
        refs = dict(enumerate(self.references))
        n = len(self.references)
        other = {j: self.references[k][0] for j, k in enumerate(other_images(n))}  # another image's caption
        counts = Counter(r for refs_j in self.references for r in refs_j)
        constant = min(counts, key=lambda r: (-counts[r], r))  # most frequent, then alphabetical
        picks = spread(n, N_EXAMPLES)
        return {
            "kind": "captioning",
            "metrics": caption_scores(refs, dict(enumerate(out))),
            "chance": caption_scores(refs, other),
            "templates": None,
            "head": {"objective": name, "text_input": head.text_input},
            "generation": {"method": "greedy", "max_len": max_len, "min_len": MIN_LEN},
            "examples": [{"reference": self.references[j][0], "generated": out[j]} for j in picks],
            "data": {
                **self.data,
                "n": n,
                "chance": "another image's caption (a seeded derangement of the images)",
                "constant_caption": {
                    "caption": constant,
                    **caption_scores(refs, dict.fromkeys(refs, constant)),
                },
            },
        }

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        if self.generated is None:
            return None
        return [caption_plot(self, name, out_dir)]


def caption_plot(task: Captioning, name: str, out_dir: str | Path) -> Path:
    """A few images (spread evenly) titled with the generated caption (green: exact match) and the reference."""
    from synclip.eval.plots import _folder, _pyplot, plot_name

    plt = _pyplot()
    picks = spread(len(task.index), N_EXAMPLES)
    cols = min(4, len(picks))
    rows = (len(picks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.5 * rows), squeeze=False)
    for ax, j in zip(axes.flat, picks):
        ax.imshow(_as_image(task.images[task.index[j]]))
        ax.set_xticks([])
        ax.set_yticks([])
        generated, reference = task.generated[j], task.references[j][0]
        hit = simple_tokenize(generated) in {simple_tokenize(r) for r in task.references[j]}
        ax.set_title(_short(f"“{generated}”"), fontsize=8, color="tab:green" if hit else "tab:red")
        ax.set_xlabel(_short(f"ref: {reference}"), fontsize=7)
    for ax in list(axes.flat)[len(picks) :]:
        ax.axis("off")
    fig.suptitle(f"{name}: greedy captions (green: exact match), references below", fontsize=10)
    fig.tight_layout()
    path = _folder(out_dir) / plot_name("captions", name)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _short(text: str, n: int = 38) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class GenerativeClassification:
    """A zero-shot task's images classified by the decoder's log-likelihood of each class name."""

    build: Callable[[], Classification]  # the contrastive zero-shot task: images, labels, classes
    unavailable: Callable[[], str | None] = lambda: None  # why its data is missing, without loading it
    prompts: tuple[str, ...] = ("{}",)  # summed log-likelihoods averaged over these (ours: the bare name)
    logits: torch.Tensor | None = None  # (N, C), filled by score, drawn by plot
    task: Classification | None = None

    def skip_reason(self) -> str | None:
        return self.unavailable()

    def score(self, evaluator) -> dict:
        name, head = decoder_head(evaluator.model)  # before any data is read
        try:
            full = self.build()
        except (FileNotFoundError, ModuleNotFoundError) as err:
            raise TaskSkipped(str(err)) from err
        keep = spread(len(full.index), N_IMAGES)
        task = dataclasses.replace(
            full, index=[full.index[p] for p in keep], labels=[full.labels[p] for p in keep]
        )
        if not task.index:
            raise TaskSkipped("no labelled images (is limit too small?)")
        model = evaluator.model
        scores = torch.zeros(len(task.index), len(task.class_names))  # (N, C)
        with eval_mode(model), torch.no_grad():
            for prompt in self.prompts:
                tokens = evaluator.tokenizer([prompt.format(c) for c in task.class_names])  # (C, L)
                for start in range(0, len(task.index), GENERATION_BATCH):
                    x = _batch(evaluator, task.images, task.index[start : start + GENERATION_BATCH])
                    x = x.to(evaluator.device)
                    part = generative_class_scores(lambda t, x=x: head.log_likelihood(model, x, t), tokens)
                    scores[start : start + x.shape[0]] += part.float().cpu() / len(self.prompts)
        self.logits, self.task = scores, task
        labels = torch.tensor(task.labels)
        contrastive = classification_metrics(evaluator.zero_shot_logits(task), labels)
        metrics = classification_metrics(scores, labels)
        chance = classification_chance(len(task.class_names))
        metrics.update({f"contrastive_{k}": contrastive[k] for k in ("top1", "top5")})
        chance.update({f"contrastive_{k}": chance[k] for k in ("top1", "top5")})
        template_set, templates = evaluator._templates(task)
        return {
            "kind": "generative_zero_shot",
            "metrics": metrics,
            "chance": chance,
            "templates": {"set": "generative", "templates": list(self.prompts)},
            "contrastive_templates": {"set": template_set, "templates": templates},
            "head": {"objective": name, "text_input": head.text_input, "reduction": "sum"},
            "classes": list(task.class_names),
            "data": {
                **task.data,
                "n": len(task.index),
                "majority_top1": max(Counter(task.labels).values()) / len(task.labels),
            },
        }

    def plot(self, evaluator, name: str, out_dir: str | Path) -> list[Path] | None:
        if self.logits is None:
            return None
        from synclip.eval.plots import _folder, confusion_matrix, plot_confusion, plot_name

        counts = confusion_matrix(self.logits, self.task.labels, len(self.task.class_names))
        path = _folder(out_dir) / plot_name("confusion", name)
        return [plot_confusion(counts, self.task.class_names, path, name)]
