"""Masked language modelling on the text tower: DeCLIP's text self-supervision (TSS).

- Devlin et al., BERT, 2019, https://arxiv.org/abs/1810.04805 (15% of tokens; 80/10/10)
- Li et al., DeCLIP, ICLR 2022, https://arxiv.org/abs/2110.05208: ``Linear(width, vocab)`` on the
  text transformer's per-token outputs (its causal mask kept); cross-entropy on masked tokens.

The ``text_mlm`` view supplies (B, 2, L) ``[masked ids; labels]`` with label -100 where nothing is
predicted (see ``synclip.data.views.text_mlm``).
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses import masked_token_ce
from synclip.losses.masked_ce import IGNORE
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("mlm")
class Mlm(Objective):
    """Token-prediction head on ``enc.text(view)["tokens"]``; loss only where labels != -100."""

    def __init__(self, model: nn.Module, source: str = "pairs", view: str = "text_mlm"):
        super().__init__(model, source)
        self.view = view
        vocab = int(model.vocab_size)
        self.head = nn.Linear(int(model.text_width), vocab)

    def reads(self) -> list[Read]:
        return [Read(self.view, "text", self.source)]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        labels = batch[self.source][self.view][:, 1]  # (B, 2, L) -> (B, L)
        tokens = enc.text(self.view, self.source)["tokens"]  # (B, L, W)
        keep = labels != IGNORE  # (B, L)
        logits = self.head(tokens[keep])  # (M, W) -> (M, V): only the masked positions
        out = masked_token_ce(logits, labels[keep])
        out["masked"] = keep.float().sum(-1).mean()
        return out
