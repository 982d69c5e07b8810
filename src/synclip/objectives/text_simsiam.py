"""SimSiam between two text views of a caption: DeCLIP's optional text self-supervision.

DeCLIP (Li et al. 2022, https://arxiv.org/abs/2110.05208; github.com/Sense-GVT/DeCLIP,
``prototype/model/declip.py``) has a text SimSiam branch behind ``return_simsiam_text`` (default
False; the released configs ``experiments/declip_experiments/*/config.yaml`` leave it off and give no
``clip_simsiam_loss_weight.text_simsiam_loss``, so it is not in the ``declip`` recipe). When on,
``DECLIP.forward`` projects the *unit-normalised* text embeddings of the caption (the MLM-masked one
when MLM is on) and of its EDA view through the image SimSiam's own ``projector`` and ``predictor``
(``ret_dict['text_simsiam'] = p1t, p2t, z1t, z2t``: it builds ``projector_text`` / ``predictor_text``
but does not use them), and the solver adds ``SimsiamLoss(p1t, z1t, p2t, z2t)``. Here:

- ``views``: the two text views (default DeCLIP's: ``text_mlm``, ``text_eda``);
- ``heads_of``: the ``simsiam`` objective whose projector and predictor are shared, as the code does
  (``null``: own heads of the same sizes, ``proj_dim`` / ``pred_dim``);
- the weight is the recipe's; DeCLIP's configs state none, so a value (say 0.2, its image SimSiam's)
  is the user's choice.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.heads import mlp
from synclip.losses import simsiam_loss
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("text_simsiam")
class TextSimSiam(Objective):
    """``-(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2`` over two text views of each caption."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        views: tuple[str, str] | list[str] = ("text_mlm", "text_eda"),
        heads_of: str | None = "simsiam",
        proj_dim: int = 1024,
        pred_dim: int = 512,
    ):
        super().__init__(model, source)
        if len(views) != 2:
            raise ValueError(f"text_simsiam.views names two text views, got {list(views)}")
        self.views = tuple(views)
        self.heads_of = heads_of
        if heads_of is None:
            self.projector = mlp([model.embed_dim, proj_dim, proj_dim, proj_dim], bn_last=True)
            self.predictor = mlp([proj_dim, pred_dim, proj_dim])

    def share_heads(self, owner: nn.Module) -> None:
        """Use ``owner``'s projector and predictor (DeCLIP's image SimSiam heads)."""
        self.projector, self.predictor = owner.projector, owner.predictor

    def reads(self) -> list[Read]:
        return [Read(view, "text", self.source) for view in self.views]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        t1, t2 = (enc.text(view, self.source)["features"] for view in self.views)  # (B, D) unit each
        z1, z2 = self.projector(t1), self.projector(t2)  # (B, P) each
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (B, P) each
        return {"loss": simsiam_loss(p1, p2, z1, z2)}
