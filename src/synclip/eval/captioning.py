"""Captioning metrics (CIDEr, BLEU) and CapPa's generative zero-shot class scores.

- [0] Vedantam et al., CIDEr: Consensus-based Image Description Evaluation, CVPR 2015,
  https://arxiv.org/abs/1411.5726; computed by pycocoevalcap's ``Cider`` (CIDEr-D: n = 4,
  sigma = 6, its defaults), pure Python, no Java.
- [1] Papineni et al., BLEU, ACL 2002; computed by sacrebleu with its defaults (13a tokenisation,
  exponential smoothing, case-sensitive), Post, A Call for Clarity in Reporting BLEU Scores, 2018,
  https://arxiv.org/abs/1804.08771.
- [2] Tschannen et al., Image Captioners Are Scalable Vision Learners Too (CapPa), 2023,
  https://arxiv.org/abs/2306.07915: zero-shot classification scores each class name by the
  decoder's log-likelihood of its tokens given the image; big_vision's ``predict_fn_score`` sums
  the per-token log-likelihoods over the real (non-pad) tokens (``normalize=False``).

Captions are ``{id: [reference, ...]}`` and ``{id: hypothesis}``. The COCO toolkit tokenises with
the Java PTB tokenizer before CIDEr; :func:`simple_tokenize` (ours) approximates it without Java:
lower case, punctuation dropped, words split on white space.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence

import torch

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def simple_tokenize(caption: str) -> str:
    """Lower-cased words of ``caption`` without punctuation, joined by single spaces (ours)."""
    return " ".join(_PUNCTUATION.sub(" ", caption.lower()).split())


def _check_ids(references: Mapping, hypotheses: Mapping) -> list:
    if set(references) != set(hypotheses):
        raise ValueError("references and hypotheses must have the same ids")
    if any(len(refs) == 0 for refs in references.values()):
        raise ValueError("every id needs at least one reference")
    return sorted(references, key=str)


def cider(
    references: Mapping[object, Sequence[str]], hypotheses: Mapping[object, str], tokenize: bool = True
) -> tuple[float, dict]:
    """Corpus CIDEr-D and the per-id scores, via pycocoevalcap (the COCO caption toolkit).

    Document frequencies come from the references of this set, so CIDEr needs several ids to be
    meaningful (with a single id every n-gram has zero idf weight).
    """
    from pycocoevalcap.cider.cider import Cider

    ids = _check_ids(references, hypotheses)
    prep = simple_tokenize if tokenize else (lambda s: s)
    gts = {i: [prep(r) for r in references[i]] for i in ids}
    res = {i: [prep(hypotheses[i])] for i in ids}
    score, per_id = Cider().compute_score(gts, res)
    return float(score), {i: float(s) for i, s in zip(ids, per_id)}


def bleu(references: Mapping[object, Sequence[str]], hypotheses: Mapping[object, str]) -> float:
    """Corpus BLEU-4 (0-100) by sacrebleu; ids may have different numbers of references."""
    import sacrebleu

    ids = _check_ids(references, hypotheses)
    most = max(len(references[i]) for i in ids)
    streams = [[references[i][k] if k < len(references[i]) else None for i in ids] for k in range(most)]
    return float(sacrebleu.corpus_bleu([hypotheses[i] for i in ids], streams).score)


def token_log_likelihoods(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at every position: logits (..., L, V), targets (..., L) -> (..., L)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (..., L, V)
    return log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (..., L)


@torch.no_grad()
def generative_class_scores(
    log_likelihoods: Callable[[torch.Tensor], torch.Tensor],
    class_tokens: torch.Tensor,
    pad_id: int = 0,
    reduction: str = "sum",
    chunk: int = 64,
) -> torch.Tensor:
    """CapPa's zero-shot scores [2]: (B, C), higher is better; predict with ``.argmax(1)``.

    Args:
        log_likelihoods: maps class prompt tokens (C', L) (SOT first, as the decoder was trained on)
            to per-token log-likelihoods (B, C', L - 1) of ``tokens[:, 1:]`` under teacher forcing,
            for every image of the batch (e.g. :func:`token_log_likelihoods` on the decoder's logits).
        class_tokens: (C, L) token ids of each class's prompt, padded with ``pad_id``.
        reduction: ``"sum"`` over the real target tokens (CapPa's big_vision scorer, the default) or
            ``"mean"`` (per-token average, our option: it removes the bias towards short names).
        chunk: classes scored per call, to bound memory (as big_vision maps over labels).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    scores = []
    for start in range(0, class_tokens.shape[0], chunk):
        tokens = class_tokens[start : start + chunk]  # (C', L)
        real = tokens[:, 1:] != pad_id  # (C', L - 1), EOT counts, pads do not
        ll = log_likelihoods(tokens)  # (B, C', L - 1)
        total = torch.where(real, ll, torch.zeros_like(ll)).sum(dim=-1)  # (B, C')
        scores.append(total / real.sum(dim=-1).clamp_min(1) if reduction == "mean" else total)
    return torch.cat(scores, dim=1)  # (B, C)
