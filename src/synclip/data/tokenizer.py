"""CLIP's byte-pair tokenizer (the vocabulary ships inside open_clip, so it works offline)."""

from __future__ import annotations

import torch

CLIP_VOCAB_SIZE = 49408


class ClipTokenizer:
    """Callable ``texts -> LongTensor (N, context_length)``: ``<sot> tokens <eot>`` then zero padding.

    Over-long texts are truncated and still end with ``<eot>`` (CLIP pools the text at that position).
    Picklable for DataLoader workers: the BPE tables are rebuilt lazily in each process, not pickled.
    """

    pad_id = 0

    def __init__(self, context_length: int = 77):
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2 (<sot> and <eot>), got {context_length}")
        self.context_length = context_length
        self._bpe = None
        bpe = self._tokenizer()
        self.vocab_size: int = len(bpe.encoder)
        self.sot_token_id: int = bpe.sot_token_id
        self.eot_token_id: int = bpe.eot_token_id

    def _tokenizer(self):
        if self._bpe is None:
            from open_clip.tokenizer import SimpleTokenizer

            self._bpe = SimpleTokenizer(context_length=self.context_length)
        return self._bpe

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without <sot>/<eot> and without truncation."""
        return self._tokenizer().encode(text)

    def decode(self, ids) -> str:
        """Token ids (a list or 1-d tensor) -> text: what lies between <sot> and the first <eot>,
        pads (0) dropped, words joined by single spaces."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        if self.eot_token_id in ids:
            ids = ids[: ids.index(self.eot_token_id)]
        ids = [i for i in ids if i not in (self.sot_token_id, self.pad_id) and i < self.vocab_size]
        return " ".join(self._tokenizer().decode(ids).split())

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)  # (N, L)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text)][: self.context_length - 1] + [self.eot_token_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_bpe"] = None
        return state

    def __repr__(self) -> str:
        return f"ClipTokenizer(context_length={self.context_length}, vocab_size={self.vocab_size})"


def get_tokenizer(context_length: int = 77) -> ClipTokenizer:
    """The CLIP tokenizer with the given context length (77 for every published CLIP)."""
    return ClipTokenizer(context_length)
