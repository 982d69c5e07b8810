"""The ``text`` view: the caption tokenised to a LongTensor (context_length,)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from synclip.data.views.base import register_view, sample_field


def _tokenise(tokenizer: Any, sample: dict) -> torch.Tensor:
    return tokenizer([sample_field(sample, "caption", "text")])[0]


@register_view("text", tower="text")
def build_text_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the text view; needs a tokenizer such as :func:`synclip.data.tokenizer.get_tokenizer`."""
    if tokenizer is None:
        raise ValueError("the text view needs a tokenizer (got None)")
    return partial(_tokenise, tokenizer)
