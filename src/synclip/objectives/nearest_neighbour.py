"""DeCLIP's nearest-neighbour supervision (NNS): images against the queue neighbours of their texts.

- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208:
  a FIFO queue of 65,536 text embeddings; each caption (and EDA caption) is replaced by its top-1
  cosine neighbour in the queue and the image is contrasted with it (CLIP-style InfoNCE); the queue
  is then filled with the batch's text features (gathered from every rank, detached).

The queue is a buffer: it is saved in and restored from checkpoints. It is filled in ``post_step`` with
the text features of the last training-mode forward, never in evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses import clip_loss
from synclip.memory import FeatureQueue
from synclip.objectives.base import Encoded, Read, TemperatureObjective
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("nearest_neighbour")
class NearestNeighbour(TemperatureObjective):
    """Mean CLIP loss of (image crop, NN(text view)) over crops x text views; the queue fills in post_step."""

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image_ssl",
        text_views: list | tuple = ("text", "text_eda"),
        queue_size: int = 65536,
        **temperature,
    ):
        super().__init__(model, source, **temperature)
        self.image_view, self.text_views = image_view, tuple(text_views)
        self.queue = FeatureQueue(queue_size, int(model.embed_dim))
        self._pending: list[torch.Tensor] = []  # text features waiting for post_step

    def reads(self) -> list[Read]:
        return [Read(self.image_view, "image", self.source)] + [
            Read(v, "text", self.source) for v in self.text_views
        ]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        images = self.crops(enc, self.image_view)  # (B, V, D)
        texts = [enc.text(v, self.source)["features"] for v in self.text_views]  # each (B, D)
        neighbours = [self.queue.nearest(t) for t in texts]  # each (B, D), detached
        # the crops x texts loop of multiview_clip_loss, with the scale taken per pair (as trained so far:
        # summing the pairs' gradients before exp() would change the optimizer state in the last bits)
        losses, accs = [], []
        for v in range(images.shape[1]):
            for nn_text in neighbours:
                out = clip_loss(images[:, v], nn_text, self.scale())
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
