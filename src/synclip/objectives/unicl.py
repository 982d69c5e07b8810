"""UniCL: one contrastive loss over image-text and image-label data in a shared label space.

- Yang et al., Unified Contrastive Learning in Image-Text-Label Space, CVPR 2022,
  https://arxiv.org/abs/2204.03610: class names become text through a random prompt template
  (``text_prompt`` view), every unique caption is its own label (``target`` view), and the
  bidirectional loss treats equal labels as positives (see :func:`synclip.losses.unicl.unicl_loss`).
- Learnable temperature as in CLIP (Radford et al. 2021): init 1/0.07, clamped to 100.

The rows of every source (e.g. 96 pairs + 32 labelled images) are concatenated on each rank, then
scored against the rows gathered from all ranks.
"""

from __future__ import annotations

import torch
from torch import nn

from synclip.losses.unicl import unicl_loss
from synclip.objectives.base import Encoded, Read, TemperatureObjective
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("unicl")
class Unicl(TemperatureObjective):
    """Label-aware image-text contrast over one or more sources.

    ``sources`` maps a source name to the text view that describes its images: ``{pairs: text}``
    (captions; then this is CLIP up to duplicate captions) or ``{pairs: text, labels: text_prompt}``.
    Every source must also provide ``image_view`` and ``target_view``.
    """

    def __init__(
        self,
        model: nn.Module,
        sources: dict | None = None,
        image_view: str = "image",
        target_view: str = "target",
        **temperature,
    ):
        sources = dict(sources or {"pairs": "text"})
        if not sources or not all(isinstance(v, str) for v in sources.values()):
            raise ValueError(
                f"unicl.sources must map source names to text views, e.g. "
                f"{{pairs: text, labels: text_prompt}}; got {sources!r}"
            )
        super().__init__(model, next(iter(sources)), **temperature)
        self.sources = sources
        self.image_view, self.target_view = image_view, target_view

    def reads(self) -> list[Read]:
        return [
            read
            for source, text in self.sources.items()
            for read in (
                Read(self.image_view, "image", source),
                Read(text, "text", source),
                Read(self.target_view, None, source),
            )
        ]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        images, texts, targets = [], [], []
        for source, text_view in self.sources.items():
            images.append(enc.image(self.image_view, source)["features"])  # (B_s, D)
            texts.append(enc.text(text_view, source)["features"])  # (B_s, D)
            targets.append(batch[source][self.target_view])  # (B_s,)
        image = torch.cat(images)  # (B, D) with B = sum of the sources' batches
        text = torch.cat(texts)  # (B, D)
        target = torch.cat(targets).to(image.device)  # (B,)
        out = unicl_loss(image, text, target, self.scale())
        out["logit_scale"] = self.scale().detach()
        return out
