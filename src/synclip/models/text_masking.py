"""FLIP's text masking: the text tower encodes a random subset of each caption's tokens.

FLIP (Li et al. 2023, https://arxiv.org/abs/2212.00794) masks text as an option beside its image
masking. Its code (github.com/facebookresearch/flip) sets the text ``mask_ratio = 0.0`` by default
(``configs/default.py``, ``get_config_txt``) and ``LanguageTransformer.apply_encoder``
(``models_flip.py``) raises ``NotImplementedError`` for any ratio above 0, so off is the default here
and the rule below is ours, modelled on FLIP's image ``random_mask`` (``models_flip.py``): each row keeps
``int(n * (1 - ratio))`` of its ``n`` maskable tokens, chosen by the order of uniform noise, and the
kept ones are gathered into a shorter sequence. Only real tokens are maskable: padding is never counted
(a short caption is not "masked" by its padding), and ``<sot>`` / ``<eot>`` always stay, because the
CLIP text tower pools at ``<eot>``. Kept tokens keep their order and their original positional
embeddings.
"""

from __future__ import annotations

import torch


def text_keep_index(text: torch.Tensor, ratio: float, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions to keep of token ids ``text`` (B, L): ``index`` (B, L'), L' the longest kept row, and
    ``kept`` (B, 1), each row's number of kept tokens; ``index`` lists a row's kept positions in order,
    then (up to L') positions of its padding or dropped tokens.

    Maskable tokens are the real ones (``!= pad_id``) between the first position (``<sot>``) and the
    last real one (``<eot>``); of ``n`` such tokens a row keeps ``int(n * (1 - ratio))``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"text_mask_ratio must be in [0, 1), got {ratio}")
    b, length = text.shape
    real = text != pad_id  # (B, L)
    positions = torch.arange(length, device=text.device).expand(b, length)  # (B, L)
    last = (real.long() * positions).argmax(dim=1, keepdim=True)  # (B, 1): position of <eot>
    maskable = real & (positions > 0) & (positions < last)  # (B, L)
    count = maskable.sum(dim=1, keepdim=True)  # (B, 1)
    drop = count - (count.double() * (1.0 - ratio)).long()  # (B, 1), FLIP's int(L * (1 - ratio)) kept
    noise = torch.rand(b, length, device=text.device).masked_fill(~maskable, 2.0)  # (B, L)
    rank = noise.argsort(dim=1).argsort(dim=1)  # (B, L): 0 for the lowest noise
    keep = real & ~(maskable & (rank < drop))  # (B, L), exactly `drop` maskable tokens gone per row
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept positions first, in order
    kept = keep.sum(dim=1, keepdim=True)  # (B, 1)
    return order[:, : int(kept.max())], kept  # (B, L'), (B, 1)


def gather_kept(
    text: torch.Tensor, x: torch.Tensor, index: torch.Tensor, kept: torch.Tensor, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, L) and their embeddings x (B, L, W) at ``index`` (B, L'); positions past a row's
    ``kept`` tokens get ``pad_id`` (so pooling never lands on them)."""
    ids = torch.gather(text, 1, index)  # (B, L')
    past = torch.arange(index.shape[1], device=text.device) >= kept  # (B, L')
    x = torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, L', W)
    return ids.masked_fill(past, pad_id), x
