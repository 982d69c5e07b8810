"""Entity / label classification with a cosine classifier on the image embedding (MOFI).

- Wu et al., MOFI: Learning Image Representations from Noisy Entity Annotated Images, 2023,
  https://arxiv.org/abs/2306.07952: entities mined from alt-text become classes; the image tower is
  trained with a softmax classifier over the entity vocabulary, alone or together with CLIP's
  contrastive loss (their multi-task model). On labelled data alone this is the plain cross-entropy
  baseline that UniCL (Yang et al. 2022, https://arxiv.org/abs/2204.03610) compares against.

The classifier is cosine: logits = <normalize(image embedding), normalize(w_k)> / temperature. With
unit vectors every logit lies in [-1/t, 1/t], so t bounds how peaked the softmax can get: NormFace
(Wang et al. 2017, https://arxiv.org/abs/1704.06369) shows that with scale s = 1/t the loss cannot go
below about log(1 + (K - 1) exp(-s K / (K - 1))). The default t = 0.05 (s = 20) makes that floor
negligible for any vocabulary we train (K = 10^4 gives ~2e-5), while a much larger scale would make
the softmax nearly one-hot from the first steps (large, noisy gradients on random heads).

Entities outside the vocabulary are ignored; the mean is over the in-vocabulary samples of the global
batch (see :func:`synclip.losses.masked_token_ce`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synclip.data.entities import build_vocabulary, read_vocabulary, source_entities
from synclip.losses import masked_token_ce
from synclip.losses.masked_ce import IGNORE
from synclip.objectives.base import Encoded, Objective, Read, RunContext
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("classify")
class Classify(Objective):
    """Cross-entropy of a cosine classifier over ``vocabulary`` on the unit ``image_view`` embedding.

    ``vocabulary``: null (``build_pretrainer`` builds it from ``source``: the sorted entities of the
    ``entity_view`` seen at least ``min_count`` times), a path to a file with one entity per line (line
    i is class i; ``min_count`` does not apply), or a list of entities. It is saved in checkpoints, so
    a resumed run or ``synclip.load`` maps entities to the same ids.
    """

    has_head = True  # the classifier serves ``synclip eval``'s classifier task as model.heads[name]

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        entity_view: str = "entity",
        vocabulary: str | list | None = None,
        min_count: int = 1,
        temperature: float = 0.05,
        image_view: str = "image",
    ):
        super().__init__(model, source)
        if vocabulary is None:
            raise ValueError(
                "classify needs its entity vocabulary: with vocabulary: null, training builds it from "
                "the source (Classify.prepare); otherwise give a file (one entity per line) or a list"
            )
        if isinstance(vocabulary, str):
            vocabulary = read_vocabulary(vocabulary)
        if not vocabulary or len(set(vocabulary)) != len(vocabulary):
            raise ValueError("classify.vocabulary must be a non-empty list of distinct entities")
        if temperature <= 0:
            raise ValueError(f"classify.temperature must be positive, got {temperature}")
        self.image_view, self.entity_view = image_view, entity_view
        self.min_count, self.temperature = min_count, float(temperature)
        dim = int(model.embed_dim)
        self.weight = nn.Parameter(torch.randn(len(vocabulary), dim) * dim**-0.5)  # (K, D)
        self._set_vocabulary(list(vocabulary))

    @classmethod
    def prepare(cls, options: dict, ctx: RunContext) -> dict:
        """``vocabulary: null`` becomes the sorted entities of ``source`` (as ``entity_view`` gives
        them) seen at least ``min_count`` times."""
        options = dict(options)
        if options.get("vocabulary") is not None:
            return options
        resolved = cls.resolve(options)
        who = f"objectives.{ctx.objective}"
        view_kind, view_options = ctx.view(resolved["entity_view"])
        if view_kind != "entity":
            raise ValueError(
                f"{who}.entity_view {resolved['entity_view']!r} is a {view_kind!r} view, not entity"
            )
        source = ctx.open_source(resolved["source"])
        entities = source_entities(source, view_options["field"], view_options["normalise"])
        options["vocabulary"] = build_vocabulary(entities, int(resolved["min_count"]))
        return options

    def reads(self) -> list[Read]:
        return [Read(self.image_view, "image", self.source), Read(self.entity_view, None, self.source)]

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary
        self.index = {entity: i for i, entity in enumerate(vocabulary)}

    def get_extra_state(self) -> dict:
        return {"vocabulary": list(self.vocabulary)}

    def set_extra_state(self, state: dict) -> None:
        vocabulary = list(state["vocabulary"])
        if len(vocabulary) != self.weight.shape[0]:
            raise RuntimeError(
                f"the checkpoint's classify vocabulary has {len(vocabulary)} entities but this run's "
                f"has {self.weight.shape[0]}: the source or min_count changed; resume with the same "
                "data, or write the checkpoint's vocabulary to a file and pass vocabulary: <file>"
            )
        self._set_vocabulary(vocabulary)

    @classmethod
    def inference_head(cls, options: dict, state: dict) -> ClassifierHead:
        return ClassifierHead(state["_extra_state"]["vocabulary"], state["weight"], options["temperature"])

    def ids(self, entities: list[str], device: torch.device) -> torch.Tensor:
        """Class ids (B,) of entity strings; -100 for entities outside the vocabulary."""
        return torch.tensor([self.index.get(e, IGNORE) for e in entities], dtype=torch.long, device=device)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """(B, K) cosine logits of unit image embeddings (B, D)."""
        weight = F.normalize(self.weight, dim=-1).to(image.dtype)  # (K, D)
        return image @ weight.T / self.temperature  # (B, D) @ (D, K) -> (B, K)

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        image = enc.image(self.image_view, self.source)["features"]  # (B, D), unit length
        targets = self.ids(list(batch[self.source][self.entity_view]), image.device)  # (B,)
        out = masked_token_ce(self.logits(image), targets)
        out["in_vocabulary"] = (targets != IGNORE).float().mean()
        return out


class ClassifierHead(nn.Module):
    """A trained ``classify`` head at inference: ``model.heads[name]`` after :func:`synclip.load`.

    ``vocabulary[k]`` names class k; ``weight`` (K, D) is the head as trained (not normalised), and
    ``logits(image features)`` are the objective's cosine logits divided by ``temperature``.
    """

    def __init__(self, vocabulary: list[str], weight: torch.Tensor, temperature: float):
        super().__init__()
        self.vocabulary = list(vocabulary)
        self.temperature = float(temperature)
        self.register_buffer("weight", weight.detach().float().clone())  # (K, D)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """(B, K) logits of unit image features (B, D)."""
        weight = F.normalize(self.weight, dim=-1).to(image.dtype)  # (K, D)
        return image @ weight.T / self.temperature  # (B, D) @ (D, K) -> (B, K)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits(image)
