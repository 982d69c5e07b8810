"""Tokenizers: CLIP's byte-pair tokenizer (its vocabulary ships inside open_clip, so it works offline)
and, for a pre-trained Hugging Face text tower, that model's own ``tokenizer.json``."""

from __future__ import annotations

from pathlib import Path

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


class WordPieceTokenizer:
    """A BERT-style model's own tokenizer (``tokenizer.json``, read by Hugging Face ``tokenizers``).

    Same interface as :class:`ClipTokenizer`: ``texts -> LongTensor (N, context_length)`` holding
    ``[CLS] tokens [SEP]`` then ``[PAD]``; over-long texts are truncated and still end with ``[SEP]``.
    ``sot_token_id`` / ``eot_token_id`` are ``[CLS]`` / ``[SEP]``. The file's own padding and
    truncation settings are switched off: the context length is the model config's.
    """

    def __init__(self, path: str | Path, context_length: int = 77):
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2 ([CLS] and [SEP]), got {context_length}")
        self.path = str(path)
        self.context_length = context_length
        self._tok = None
        tok = self._tokenizer()
        ids = {name: tok.token_to_id(name) for name in ("[CLS]", "[SEP]", "[PAD]")}
        if None in ids.values():
            missing = [k for k, v in ids.items() if v is None]
            raise ValueError(
                f"{self.path} has no {missing} token: it is not a BERT-style WordPiece tokenizer"
            )
        self.sot_token_id, self.eot_token_id, self.pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]
        self.vocab_size: int = tok.get_vocab_size()

    def _tokenizer(self):
        if self._tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(self.path)
            tok.no_padding()
            tok.no_truncation()
            self._tok = tok
        return self._tok

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without [CLS]/[SEP] and without truncation."""
        return self._tokenizer().encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """Token ids -> text, up to the first [SEP], special tokens and pads dropped."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        if self.eot_token_id in ids:
            ids = ids[: ids.index(self.eot_token_id)]
        return self._tokenizer().decode([i for i in ids if i not in (self.sot_token_id, self.pad_id)])

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
        state["_tok"] = None  # rebuilt in each DataLoader worker
        return state

    def __repr__(self) -> str:
        return f"WordPieceTokenizer({self.path!r}, context_length={self.context_length})"


def get_tokenizer(
    context_length: int = 77, tokenizer_file: str | Path | None = None
) -> ClipTokenizer | WordPieceTokenizer:
    """The CLIP tokenizer with the given context length (77 for every published CLIP), or the
    WordPiece tokenizer of ``tokenizer_file`` (a pre-trained Hugging Face text tower's)."""
    if tokenizer_file is not None:
        return WordPieceTokenizer(tokenizer_file, context_length)
    return ClipTokenizer(context_length)
