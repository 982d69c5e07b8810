"""Captioning loss: next-token cross-entropy with teacher forcing, and CapPa's parallel prediction.

- [0] Yu et al., CoCa: Contrastive Captioners are Image-Text Foundation Models, 2022,
  https://arxiv.org/abs/2205.01917 (captioning loss, Eq. 3; total loss weights lambda_Cap = 2,
  lambda_Con = 1, as open_clip's ``--coca-caption-loss-weight 2.0`` / ``--coca-contrastive-loss-weight 1.0``).
- [1] Tschannen et al., Image Captioners Are Scalable Vision Learners Too (CapPa), NeurIPS 2023,
  https://arxiv.org/abs/2306.07915 (parallel prediction, Sec. 3).

Token layout is open_clip's tokenizer: ``[SOT, w_1 .. w_k, EOT, 0, 0, ...]`` padded with 0. Teacher
forcing feeds ``tokens[:, :-1]`` and predicts ``tokens[:, 1:]`` (as open_clip's ``CoCa.forward``);
positions whose target is the pad id do not count. The EOT target counts, so the model learns to stop.

Reductions (both with label smoothing 0, the default of open_clip's ``CoCaLoss`` and of big_vision's
CapPa config ``label_smoothing = 0.0``):

- ``"tokens"`` (default): mean over the real target tokens of the GLOBAL batch, open_clip's
  ``CrossEntropyLoss(ignore_index=pad_id)`` on one process. Each rank divides its sum by the global
  count / world (as :func:`synclip.losses.masked_ce.masked_token_ce`), so averaging the ranks' losses,
  as DDP does, equals one process even when captions have different lengths on different ranks.
- ``"captions"``: mean over each caption's real tokens, then mean over captions, big_vision's
  ``weighted_softmax_xent(normalize=True)`` used by the CapPa trainer (every caption weighs the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synclip import distributed as dist

PAD_ID = 0  # open_clip's tokenizer pads with 0 (CoCaLoss(pad_id=0))
PARALLEL_FRACTION = 0.75  # [1]: masked_pred_prob = 0.75 in big_vision's configs/proj/cappa/pretrain.py


def teacher_forcing(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split token ids (B, L) into decoder inputs ``tokens[:, :-1]`` and targets ``tokens[:, 1:]``, (B, L - 1)."""
    return tokens[:, :-1], tokens[:, 1:]


def caption_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pad_id: int = PAD_ID,
    label_smoothing: float = 0.0,
    reduction: str = "tokens",
) -> dict[str, torch.Tensor]:
    """Next-token cross-entropy of ``logits`` (B, L, V) against ``targets`` (B, L), pads ignored.

    Returns ``{"loss", "acc", "tokens"}``: ``acc`` is the top-1 next-token accuracy over this rank's
    real targets, ``tokens`` their count. With ``reduction="tokens"`` every rank must call it (it
    counts the real tokens across ranks).
    """
    if reduction not in ("tokens", "captions"):
        raise ValueError(f"reduction must be 'tokens' or 'captions', got {reduction!r}")
    real = targets != pad_id  # (B, L)
    per_token = F.cross_entropy(
        logits.flatten(0, 1),  # (B * L, V)
        targets.flatten(),  # (B * L,)
        reduction="none",
        label_smoothing=label_smoothing,
    ).view_as(targets)  # (B, L)
    per_token = per_token * real  # pads contribute exactly 0 (and no gradient)
    if reduction == "tokens":
        count = dist.all_reduce_sum(real.sum().float())  # real tokens in the global batch
        loss = per_token.sum() * dist.world_size() / count.clamp_min(1)
    else:
        per_caption = per_token.sum(dim=1) / real.sum(dim=1).clamp_min(1)  # (B,)
        loss = per_caption.mean()
    with torch.no_grad():
        hits = ((logits.argmax(dim=-1) == targets) & real).sum()
        acc = hits.float() / real.sum().clamp_min(1)
    return {"loss": loss, "acc": acc, "tokens": real.sum()}


def parallel_prediction_inputs(
    inputs: torch.Tensor,
    mask_id: int,
    fraction: float = PARALLEL_FRACTION,
    per_batch: bool = False,
    generator: torch.Generator | None = None,
    draws: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CapPa's parallel prediction [1]: for a random ``fraction`` of captions, mask EVERY input token.

    The chosen captions' decoder inputs (B, L) all become ``mask_id`` (big_vision: ``masking_ratio =
    1.0``, mask id = vocab size, one extra embedding row); the targets stay the full caption, so the
    decoder predicts all tokens at once from the image alone. The decoder must then drop the causal
    self-attention mask for those captions (big_vision sets their decoder mask to all ones); pass the
    returned flag to :meth:`synclip.models.caption_decoder.CaptionDecoder.forward` as ``parallel``.

    The draw is per caption, as in big_vision's ``Decoder`` (``uniform((B,)) < masked_pred_prob``):
    caption i is predicted in parallel when ``draws[i] < fraction``. ``draws`` (B,) in [0, 1) are the
    per-sample numbers of the loader's ``uniform`` view (:mod:`synclip.data.views.uniform`), which
    depend on each sample's seed alone, so training repeats on resume and for any number of ranks;
    without them the draw comes from ``generator`` (or torch's process RNG). ``per_batch=True`` (our
    option) masks the whole batch or none of it with probability ``fraction``, by the first draw.

    Returns the masked inputs (B, L) and the per-caption flag (B,) bool.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    b = inputs.shape[0]
    if draws is None:
        draws = torch.rand(1 if per_batch else b, generator=generator)  # (1,) or (B,), on CPU
    elif draws.shape != (b,):
        raise ValueError(f"draws must hold one number per caption, shape ({b},), got {tuple(draws.shape)}")
    elif per_batch:
        draws = draws[:1]  # (1,)
    parallel = (draws.to(inputs.device) < fraction).expand(b)  # (B,)
    masked = torch.where(parallel.unsqueeze(1), torch.full_like(inputs, mask_id), inputs)  # (B, L)
    return masked, parallel
