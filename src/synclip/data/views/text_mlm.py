"""The ``text_mlm`` view: a masked caption and its labels, a LongTensor (2, context_length).

Row 0 holds the token ids the text tower reads, row 1 the labels: the original id where a token was
selected for prediction, -100 elsewhere. BERT's recipe (Devlin et al. 2019), as DeCLIP uses it:
each non-special token (not <sot>, <eot> or padding) is selected with probability 0.15 (at least one
per caption); a selected token becomes the mask token with p 0.8, a random token with p 0.1, and
stays unchanged with p 0.1.

CLIP's vocabulary has no mask token, and adding one would change the embedding table and break the
open_clip weight layout. The default ``mask_id`` is therefore 49405, the last BPE merge of CLIP's
vocabulary ("<|startoftext|>" is 49406, "<|endoftext|>" 49407), a token that practically never
occurs in captions; the MLM head learns it as "masked". ``<|endoftext|>`` must not be used: CLIP pools
the text at the first highest id, i.e. at <eot>. Randomness comes from torch's global RNG.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from synclip.data.views.base import register_view, sample_field
from synclip.losses.masked_ce import IGNORE

DEFAULT_MASK_ID = 49405


def mask_tokens(
    ids: torch.Tensor,
    special: list[int],
    vocab_size: int,
    mask_id: int,
    prob: float = 0.15,
    mask_p: float = 0.8,
    random_p: float = 0.1,
) -> torch.Tensor:
    """``ids`` (L,) -> (2, L) ``[masked ids; labels]``."""
    candidates = ~torch.isin(ids, torch.tensor(special, dtype=ids.dtype))  # (L,)
    selected = (torch.rand(ids.shape) < prob) & candidates
    if candidates.any() and not selected.any():  # at least one prediction per caption
        positions = candidates.nonzero().flatten()
        selected[positions[torch.randint(len(positions), ())]] = True
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape)
    masked = ids.clone()
    masked[selected & (roll < mask_p)] = mask_id
    randomise = selected & (roll >= mask_p) & (roll < mask_p + random_p)
    high = min(vocab_size, mask_id)  # ordinary tokens only: below the mask id and <sot>/<eot>
    masked[randomise] = torch.randint(0, high, (int(randomise.sum()),), dtype=ids.dtype)
    return torch.stack([masked, labels])  # (2, L)


def _masked(tokenizer: Any, cfg: dict, sample: dict) -> torch.Tensor:
    ids = tokenizer([sample_field(sample, "caption", "text_mlm")])[0]  # (L,)
    special = [tokenizer.pad_id, tokenizer.sot_token_id, tokenizer.eot_token_id]
    return mask_tokens(
        ids, special, tokenizer.vocab_size, cfg["mask_id"], cfg["prob"], cfg["mask_p"], cfg["random_p"]
    )


@register_view("text_mlm", tower="text", prob=0.15, mask_p=0.8, random_p=0.1, mask_id=DEFAULT_MASK_ID)
def build_text_mlm_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the MLM view; needs the CLIP tokenizer."""
    if tokenizer is None:
        raise ValueError("the text_mlm view needs a tokenizer (got None)")
    if not 0 < float(cfg["prob"]) <= 1 or float(cfg["mask_p"]) + float(cfg["random_p"]) > 1:
        raise ValueError(f"text_mlm view: need 0 < prob <= 1 and mask_p + random_p <= 1, got {cfg}")
    return partial(_masked, tokenizer, dict(cfg))
