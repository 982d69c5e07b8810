"""DeCLIP's nearest-neighbour supervision (NNS): images against the queue neighbours of their texts.

- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208:
  a FIFO queue of 65,536 text embeddings; each caption (and EDA caption) is replaced by its top-1
  cosine neighbour in the queue and the image is contrasted with it; the queue is then filled with the
  batch's text features (gathered from every rank, detached).
- DeCLIP's code (github.com/Sense-GVT/DeCLIP, ``prototype/solver/declip_solver.py``) trains this term
  in one direction only: ``self.criterion(logits_per_image_1_nn, logits_per_image_1_nn_aug)`` puts
  image -> NN(caption) and image -> NN(EDA caption) logits in the two slots of ``ClipInfoCELoss``, so
  the loss is the mean image -> neighbour cross-entropy over 2 crops x 2 texts, with no
  neighbour -> image term. That is the default here; ``symmetric=True`` (ours, synclip's earlier
  behaviour) adds the neighbour -> image term as in CLIP's loss.
- ``topk``: DeCLIP's ``NNMemoryBankModule(topk=k)`` (``nn_topk``, default 1) returns the k nearest
  queue rows and its model concatenates one logit block per neighbour rank. Its ``ClipInfoCELoss``
  labels do not cover k > 1 (they assume as many rows as columns), so for k > 1 synclip scores each
  neighbour rank as its own block with the matching sample as target and averages the blocks (our
  reading of the concatenation).

The queue is a buffer: it is saved in and restored from checkpoints. It is filled in ``post_step`` with
the text features of the last training-mode forward, never in evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses import clip_loss, image_to_text_loss
from synclip.memory import FeatureQueue
from synclip.objectives.base import Encoded, Read, TemperatureObjective
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("nearest_neighbour")
class NearestNeighbour(TemperatureObjective):
    """Mean image -> NN(text view) cross-entropy over crops x text views x neighbours; the queue fills
    in post_step."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image_ssl",
        text_views: list | tuple = ("text", "text_eda"),
        queue_size: int = 65536,
        topk: int = 1,
        symmetric: bool = False,
        **temperature,
    ):
        super().__init__(model, source, **temperature)
        if int(topk) < 1:
            raise ValueError(f"nearest_neighbour topk must be at least 1, got {topk}")
        self.image_view, self.text_views = image_view, tuple(text_views)
        self.topk, self.symmetric = int(topk), bool(symmetric)
        self.queue = FeatureQueue(queue_size, int(model.embed_dim))
        self._pending: list[torch.Tensor] = []  # text features waiting for post_step

    def reads(self) -> list[Read]:
        return [Read(self.image_view, "image", self.source)] + [
            Read(v, "text", self.source) for v in self.text_views
        ]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        images = self.crops(enc, self.image_view)  # (B, V, D)
        texts = [enc.text(v, self.source)["features"] for v in self.text_views]  # each (B, D)
        neighbours = [self.queue.neighbours(t, self.topk) for t in texts]  # each (B, k, D), detached
        loss_fn = clip_loss if self.symmetric else image_to_text_loss
        # crops x texts x neighbour ranks, the scale taken per pair
        losses, accs = [], []
        for v in range(images.shape[1]):
            for nn_texts in neighbours:
                for j in range(nn_texts.shape[1]):
                    out = loss_fn(images[:, v], nn_texts[:, j], self.scale())  # (B, D) vs (B, D)
                    losses.append(out["loss"])
                    accs.append(out["acc"])
        if self.training:  # enqueued in post_step, so a batch never retrieves its own texts
            self._pending = [t.detach() for t in reversed(texts)]  # DeCLIP: EDA caption, then caption
        return {
            "loss": torch.stack(losses).mean(),
            "acc": torch.stack(accs).mean(),
            "queue_filled": self.queue.filled.detach().float(),
        }

    @torch.no_grad()
    def post_step(self) -> None:
        """Clamp the temperature; enqueue the last training forward's text features (all ranks').

        Enqueuing here rather than in ``forward`` adds each optimizer step's batch exactly once, also
        when gradient accumulation runs the forward several times per step.
        """
        super().post_step()  # clamp the temperature
        for text in self._pending:
            self.queue.push(text)
        self._pending = []
