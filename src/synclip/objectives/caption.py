"""Captioning objective: a text decoder over the image tower's tokens (CoCa's captioner, CapPa).

- [0] Yu et al., CoCa: Contrastive Captioners are Image-Text Foundation Models, 2022,
  https://arxiv.org/abs/2205.01917: a multimodal decoder cross-attends to the image encoder's tokens
  and is fed the unimodal text decoder's outputs; captioning loss = next-token cross-entropy with
  teacher forcing; total loss lambda_Con * L_Con + lambda_Cap * L_Cap with 1 : 2 (open_clip_train's
  ``--coca-contrastive-loss-weight 1.0`` / ``--coca-caption-loss-weight 2.0``, the ``coca`` recipe).
- [1] Tschannen et al., Image Captioners Are Scalable Vision Learners Too (CapPa), NeurIPS 2023,
  https://arxiv.org/abs/2306.07915: a plain captioner with its own token embedding, trained with
  parallel prediction on a random 75% of the captions (big_vision ``masked_pred_prob = 0.75``): every
  input token of those captions is the [MASK] token and the causal mask is dropped (the ``cappa``
  recipe).

Options (defaults from the papers and open_clip unless marked ours):

- ``text_input``: ``"tower"`` (CoCa): the decoder reads the text tower's per-token outputs for
  ``tokens[:, :-1]``, the same encoding the contrastive objective uses (one text-tower call per batch);
  ``"embedding"`` (CapPa): its own :class:`~synclip.models.caption_decoder.TokenEmbedding` with a
  [MASK] row, the text tower is not used.
- ``parallel_fraction``: CapPa's fraction of captions predicted in parallel (0 = plain teacher forcing,
  CoCa; 0.75 in the ``cappa`` recipe, [1]). Needs ``text_input="embedding"`` (the text tower has no
  [MASK] token). Applied in training only. Each caption's choice comes from the loader's ``uniform``
  view, seeded per sample, so it repeats on resume and is the same for any number of ranks; a batch
  without that view is refused in training.
- ``width``, ``layers``, ``heads``: the decoder's transformer. ``None`` (ours, sized to our tiny
  models): open_clip's CoCa configs give the multimodal decoder the text tower's width, heads and
  layers (``coca_ViT-B-32``: 512 / 8 / 12, as its text tower), so width and heads follow the text
  tower for ``text_input="tower"`` and the image tower for ``"embedding"`` (without a pooler the
  decoder cross-attends to the image tokens as they are, which needs the image width); layers follow
  the text tower in both cases.
- ``n_queries``: the attentional pooler's queries between the image tokens and the decoder
  (open_clip ``MultimodalCfg.n_queries = 256``; CoCa [0]: 256 for the captioning loss); ``None`` feeds
  the image tokens to the cross-attention directly (CapPa, the ``cappa`` recipe). ``pooler_heads``: 8
  (open_clip's ``attn_pooler_heads``), ``mlp_ratio``: 4 (open_clip).
- ``label_smoothing`` 0 and ``reduction="tokens"`` (see :func:`synclip.losses.caption.caption_loss`).

Two layouts, chosen by the model config:

- **open_clip's CoCa** (a config with ``multimodal_cfg``: ``coca-micro-vit-32``, ``coca-tiny-vit-48``
  of the ``coca`` recipe, open_clip's ``coca_ViT-B-32``; :mod:`synclip.models.coca_towers`): the towers
  ARE open_clip's CoCa towers. The image tower's attentional pooler reads all ViT tokens (CLS included)
  before ``ln_post``; its first query is the contrastive embedding and the others are the decoder's
  image tokens, so the objective has no pooler of its own. The text tower appends a CLS embedding
  and the decoder reads its per-token outputs before ``ln_final``. The decoder is open_clip's
  ``MultimodalTransformer`` sized by ``multimodal_cfg`` (``width`` / ``layers`` / ``heads`` /
  ``n_queries`` options must be left unset, ``text_input="tower"``). :meth:`Caption.export_state` puts
  it beside the towers as ``text_decoder.*``, so ``synclip export`` writes a state dict that
  ``open_clip.create_model(<config>)`` (a ``CoCa``) loads with ``strict=True`` and whose
  ``CoCa.generate`` gives the same captions (greedy: same token ids; see
  :mod:`synclip.models.caption_generation` for the length conventions).
- **a plain CLIP config** (``micro-vit-32``, ``tiny-vit-48``; the ``cappa`` and ``siglip_caption``
  recipes): the decoder reads ``TwoTower.image_outputs(images)["tokens"]``, the ViT's patch tokens
  after ``ln_post`` (CLS left out), through the objective's own attentional pooler (``n_queries``) or
  directly (CapPa), and the contrastive embedding stays the tower's CLS embedding, so every
  contrastive objective and evaluation is unchanged when a decoder is added. With
  ``text_input="tower"`` the decoder reads the text tower's tokens after ``ln_final`` (shared with
  the contrastive objective). This layout is not open_clip's CoCa: ``synclip export`` carries the
  decoder as a synclip head (``heads.<name>``) beside open_clip's CLIP weights, and
  :func:`synclip.load` rebuilds it; open_clip loads the towers but has no decoder to generate with.

In both, a batch's inputs are cut after its longest caption (ours; big_vision pads to the context
length), so the vocabulary head skips most padding. Exact for causal rows; for parallel rows the
all-[MASK] inputs beyond it (which only predict padding) are left out. A parallel row attends to every
[MASK] position, so there the cut is the longest caption of the global batch (all ranks), which keeps
1 and N processes equal.
"""

from __future__ import annotations

from typing import Any

import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip import distributed as dist
from synclip.losses.caption import PAD_ID, caption_loss, parallel_prediction_inputs, teacher_forcing
from synclip.models.caption_decoder import N_QUERIES, POOLER_HEADS, CaptionDecoder, TokenEmbedding
from synclip.models.caption_generation import (
    EOT_ID,
    MAX_LEN,
    NUM_BEAMS,
    SOT_ID,
    beam_search,
    decoder_next_logits,
    greedy,
    sample,
)
from synclip.objectives.base import Encoded, Objective, Read
from synclip.registry import OBJECTIVES

TEXT_INPUTS = ("tower", "embedding")
METHODS = ("greedy", "beam", "sample")
DRAW_VIEW = "uniform"  # the per-sample number that decides parallel prediction (data.views.uniform)
MIN_LEN = 1  # ours: emoji names are one or two words; open_clip's CoCa.generate: min_seq_len=5 (4 tokens)
ROWS_PER_CALL = 512  # decoder rows (image, prompt) scored per call in log_likelihood, to bound memory


def _heads(tower: nn.Module) -> int:
    return int(tower.transformer.resblocks[0].attn.num_heads)


def coca_layout(model: nn.Module) -> bool:
    """Whether ``model`` has open_clip's CoCa towers (:class:`~synclip.models.coca_towers.CocaTowers`)."""
    return getattr(model, "multimodal_cfg", None) is not None


def coca_decoder_settings(
    model: nn.Module,
    text_input: str,
    width: int | None,
    layers: int | None,
    heads: int | None,
    n_queries: int | None,
) -> dict[str, Any]:
    """The decoder of open_clip's ``CoCa`` for ``model``'s ``multimodal_cfg`` (``_build_text_decoder_tower``:
    ``MultimodalCfg`` defaults for what the config leaves out; its ``mlp_ratio`` is not passed on, so 4)."""
    from open_clip.coca_model import MultimodalCfg

    cfg = MultimodalCfg(**model.multimodal_cfg)
    if text_input != "tower":
        raise ValueError(
            f"{model.name} has open_clip's CoCa towers, whose decoder reads the text tower: use "
            "caption.text_input=tower, or a plain config (micro-vit-32, tiny-vit-48) for CapPa"
        )
    given = {"width": (width, cfg.width), "layers": (layers, cfg.layers), "heads": (heads, cfg.heads)}
    for option, (value, own) in given.items():
        if value is not None and int(value) != own:
            raise ValueError(
                f"caption.{option}={value}, but {model.name}'s multimodal_cfg sets {option}={own}: "
                "leave it unset (the config sizes CoCa's decoder) or change the model config"
            )
    pooler = int(model.visual.attn_pool.query.shape[0])
    if n_queries not in (None, N_QUERIES, pooler):
        raise ValueError(
            f"caption.n_queries={n_queries}, but {model.name}'s image tower pools {pooler} queries itself "
            "(vision_cfg.attn_pooler_queries): leave it unset"
        )
    if cfg.width != model.embed_dim or cfg.width != model.text_width:
        raise ValueError(
            f"{model.name}: multimodal_cfg.width ({cfg.width}) must equal embed_dim ({model.embed_dim}) and "
            f"text_cfg.width ({model.text_width}), as open_clip's CoCa cross-attends to the pooled queries"
        )
    return {
        "vocab_size": int(cfg.vocab_size),
        "width": int(cfg.width),
        "layers": int(cfg.layers),
        "heads": int(cfg.heads),
        "context_length": int(cfg.context_length),
        "image_width": int(model.embed_dim),
        "n_queries": None,  # the image tower's attentional pooler already gave the queries
        "pooler_heads": POOLER_HEADS,
        "mlp_ratio": 4.0,
        "quick_gelu": bool(model.quick_gelu),
        "ls_init_value": cfg.ls_init_value,
    }


def decoder_settings(
    model: nn.Module,
    text_input: str,
    width: int | None,
    layers: int | None,
    heads: int | None,
    n_queries: int | None,
    pooler_heads: int,
    mlp_ratio: float,
) -> dict[str, Any]:
    """The :class:`CaptionDecoder` constructor arguments for ``model``, defaults filled (see module doc)."""
    if coca_layout(model):
        return coca_decoder_settings(model, text_input, width, layers, heads, n_queries)
    visual = model.visual
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise ValueError(
            f"objective caption needs a ViT image tower's patch tokens; {model.name} has "
            f"a {type(visual).__name__} image tower"
        )
    own = "text" if text_input == "tower" else "image"
    tower_width = int(model.text_width if own == "text" else model.vision_width)
    width = tower_width if width is None else int(width)
    if text_input == "tower" and width != int(model.text_width):
        raise ValueError(
            f"caption.width ({width}) must equal the text tower's width ({model.text_width}) with "
            "text_input='tower': the decoder reads the text tower's tokens"
        )
    heads = (_heads(model) if own == "text" else _heads(visual)) if heads is None else int(heads)
    if width % heads:
        raise ValueError(f"caption.heads ({heads}) must divide caption.width ({width})")
    return {
        "vocab_size": int(model.vocab_size),
        "width": width,
        "layers": int(model.transformer.layers) if layers is None else int(layers),
        "heads": heads,
        "context_length": int(model.context_length),
        "image_width": int(model.vision_width),
        "n_queries": None if n_queries is None else int(n_queries),
        "pooler_heads": int(pooler_heads),
        "mlp_ratio": float(mlp_ratio),
    }


@OBJECTIVES.register("caption")
class Caption(Objective):
    """Next-token cross-entropy of a :class:`CaptionDecoder` over the image tower's tokens."""

    has_head = True

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        image_view: str = "image",
        text_view: str = "text",
        text_input: str = "tower",
        parallel_fraction: float = 0.0,
        width: int | None = None,
        layers: int | None = None,
        heads: int | None = None,
        n_queries: int | None = N_QUERIES,
        pooler_heads: int = POOLER_HEADS,
        mlp_ratio: float = 4.0,
        label_smoothing: float = 0.0,
        reduction: str = "tokens",
    ):
        super().__init__(model, source)
        if text_input not in TEXT_INPUTS:
            raise ValueError(f"caption.text_input must be one of {TEXT_INPUTS}, got {text_input!r}")
        if not 0.0 <= parallel_fraction <= 1.0:
            raise ValueError(f"caption.parallel_fraction must lie in [0, 1], got {parallel_fraction}")
        if parallel_fraction > 0 and text_input != "embedding":
            raise ValueError(
                "caption.parallel_fraction needs text_input='embedding' (CapPa): the text tower has no "
                "[MASK] token"
            )
        self.image_view, self.text_view = image_view, text_view
        self.text_input = text_input
        self.parallel_fraction = float(parallel_fraction)
        self.label_smoothing, self.reduction = label_smoothing, reduction
        self.settings = decoder_settings(
            model, text_input, width, layers, heads, n_queries, pooler_heads, mlp_ratio
        )
        self.coca = coca_layout(model)  # open_clip's CoCa: the decoder is exported beside the towers
        self.decoder = CaptionDecoder(**self.settings)
        self.embedding = (
            TokenEmbedding(
                self.settings["vocab_size"], self.settings["width"], self.settings["context_length"]
            )
            if text_input == "embedding"
            else None
        )

    def reads(self) -> list[Read]:
        text_tower = "text" if self.text_input == "tower" else None
        reads = [
            Read(self.image_view, "image", self.source),
            Read(self.text_view, text_tower, self.source),
        ]
        if self.parallel_fraction > 0:  # each caption's parallel-prediction draw, seeded per sample
            reads.append(Read(DRAW_VIEW, None, self.source))
        return reads

    def decoder_inputs(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        """``{"image": (B, P, W_img), "inputs", "targets": (B, T), "text": (B, T, W), "parallel": (B,)}``:
        everything the decoder's training step reads, T the batch's longest caption minus one."""
        tokens = batch[self.source][self.text_view]  # (B, L)
        if tokens.ndim == 3:
            tokens = tokens[:, 0]  # (B, 2, L) [ids; MLM labels] -> ids
        longest = (tokens != PAD_ID).sum(dim=1).max()  # longest caption here, SOT and EOT included
        parallel_on = self.parallel_fraction > 0 and self.training  # __init__: embedding only
        if parallel_on:  # a parallel caption attends to every [MASK] position: the same T on every rank
            longest = dist.all_reduce_max(longest)
        length = max(2, int(longest))
        inputs, targets = teacher_forcing(tokens[:, :length])  # (B, T) each, T = length - 1
        parallel = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)  # (B,)
        if self.text_input == "tower":
            text = enc.text(self.text_view, self.source)["tokens"][:, : length - 1]  # (B, T, W)
        else:
            if parallel_on:
                draws = batch[self.source].get(DRAW_VIEW)  # (B,)
                if draws is None:  # the process RNG would differ per rank and on resume
                    raise ValueError(
                        f"caption.parallel_fraction > 0 decides each caption by its '{DRAW_VIEW}' view, "
                        f"which the {self.source!r} batch lacks: build batches from the objective's "
                        "reads() (the training loop does), or add a (B,) tensor of numbers in [0, 1)"
                    )
                inputs, parallel = parallel_prediction_inputs(
                    inputs, self.embedding.mask_id, self.parallel_fraction, draws=draws
                )
            text = self.embedding(inputs)  # (B, T, W)
        image = enc.image(self.image_view, self.source)["tokens"]  # (B, P, W_img)
        return {"image": image, "inputs": inputs, "targets": targets, "text": text, "parallel": parallel}

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        x = self.decoder_inputs(enc, batch)
        logits = self.decoder(x["image"], x["text"], parallel=x["parallel"])  # (B, T, V)
        out = caption_loss(
            logits, x["targets"], label_smoothing=self.label_smoothing, reduction=self.reduction
        )
        result = {"loss": out["loss"], "acc": out["acc"]}
        if self.parallel_fraction > 0:
            result["parallel"] = x["parallel"].float().mean()  # fraction of captions predicted in parallel
        return result

    def export_state(self) -> dict[str, torch.Tensor]:
        """With open_clip's CoCa towers, the decoder as ``text_decoder.*`` (open_clip's ``CoCa`` layout)."""
        if not self.coca:
            return {}
        return {f"text_decoder.{k}": v.detach() for k, v in self.decoder.text_decoder.state_dict().items()}

    def load_exported(self, exported: dict[str, torch.Tensor]) -> list[str]:
        """Published CoCa weights (``open_clip:coca_ViT-B-32:...``): start from their ``text_decoder``."""
        own = self.export_state()
        if not own or not all(k in exported and exported[k].shape == v.shape for k, v in own.items()):
            return []
        state = {k.removeprefix("text_decoder."): exported[k] for k in own}
        self.decoder.text_decoder.load_state_dict(state)
        return sorted(own)

    def inference_state(self) -> dict[str, Any]:
        def own(module: nn.Module | None) -> dict | None:
            return None if module is None else {k: v.detach().clone() for k, v in module.state_dict().items()}

        return {
            "settings": dict(self.settings),
            "text_input": self.text_input,
            "decoder": own(self.decoder),
            "embedding": own(self.embedding),
        }

    @classmethod
    def inference_head(cls, options: dict[str, Any], state: dict[str, Any]) -> nn.Module:
        return CaptionHead(state["settings"], state["text_input"], state["decoder"], state["embedding"])


class CaptionHead(nn.Module):
    """The trained decoder at inference (``model.heads[name]``): captions and caption likelihoods.

    Its methods take the :class:`~synclip.models.TwoTower` it belongs to: the image tower gives the
    tokens, and with ``text_input="tower"`` (CoCa) the text tower embeds the prefixes.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        text_input: str,
        decoder_state: dict[str, torch.Tensor],
        embedding_state: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        self.settings, self.text_input = dict(settings), text_input
        self.decoder = CaptionDecoder(**self.settings)
        self.decoder.load_state_dict(decoder_state)
        self.embedding = None
        if text_input == "embedding":
            s = self.settings
            self.embedding = TokenEmbedding(s["vocab_size"], s["width"], s["context_length"])
            self.embedding.load_state_dict(embedding_state)

    # -- inputs ----------------------------------------------------------------------------------
    def _images(self, model: nn.Module, images) -> torch.Tensor:
        """Preprocessed images (B, 3, H, W), or PIL images run through ``model.preprocess``."""
        if not isinstance(images, torch.Tensor):
            images = torch.stack([model.preprocess(image) for image in images])  # (B, 3, H, W)
        param = next(model.parameters())
        return images.to(device=param.device, dtype=param.dtype)

    def _embed(self, model: nn.Module):
        if self.text_input == "tower":
            return lambda ids: model.text_outputs(ids)["tokens"]  # (R, L, W)
        return self.embedding  # ids (R, t) -> (R, t, W)

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_ids(
        self,
        model: nn.Module,
        images,
        method: str = "greedy",
        max_len: int = MAX_LEN,
        min_len: int = MIN_LEN,
        temperature: float = 1.0,
        beams: int = NUM_BEAMS,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Token ids (B, <= max_len): SOT, the caption, EOT, then padding (see :mod:`caption_generation`)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if max_len < 2:
            raise ValueError(f"max_len must be at least 2 (start and end tokens), got {max_len}")
        x = self._images(model, images)
        tokens = model.image_outputs(x)["tokens"]  # (B, P, W_img)
        # CLIP's text tower takes its whole context; CoCa's takes any length (open_clip's generate
        # feeds it the prefix alone, and so do we: the same computation)
        pad_to = int(model.context_length) if self.text_input == "tower" and not coca_layout(model) else None
        next_logits = decoder_next_logits(self.decoder, tokens, self._embed(model), pad_to=pad_to)
        max_len = min(int(max_len), self.settings["context_length"])  # the decoder's causal mask
        common = {"max_len": max_len, "min_len": int(min_len), "sot_id": SOT_ID, "eot_id": EOT_ID}
        b, device = x.shape[0], x.device
        if method == "greedy":
            return greedy(next_logits, b, device, **common)
        if method == "sample":
            return sample(next_logits, b, device, temperature=temperature, generator=generator, **common)
        return beam_search(next_logits, b, device, num_beams=int(beams), temperature=temperature, **common)

    def generate(self, model: nn.Module, images, **options) -> list[str]:
        """One caption per image: ``method`` "greedy" (default, deterministic), "beam" (``beams``) or
        "sample" (``temperature``, ``generator``); ``max_len`` tokens at most (start and end included),
        no end token before ``min_len`` generated tokens (1, ours; open_clip's CoCa: 4, as its
        ``min_seq_len=5`` counts the start token)."""
        ids = self.generate_ids(model, images, **options)
        return decode_captions(model, ids)

    # -- scoring ---------------------------------------------------------------------------------
    @torch.no_grad()
    def log_likelihood(self, model: nn.Module, images, token_ids: torch.Tensor) -> torch.Tensor:
        """log p(token_ids[:, t + 1] | image, token_ids[:, : t + 1]): (B, C, L - 1) for C texts (C, L).

        Teacher forcing, as in training; pads get a value too (mask them with ``token_ids[:, 1:] != 0``).
        Texts are cut after the longest one, and (image, text) rows are scored ROWS_PER_CALL at a time.
        """
        x = self._images(model, images)
        image = self.decoder.encode_image(model.image_outputs(x)["tokens"])  # (B, Q, W)
        token_ids = token_ids.to(x.device)
        full = token_ids.shape[1]
        length = max(2, int((token_ids != PAD_ID).sum(dim=1).max()))
        if self.text_input == "tower":
            text = model.text_outputs(token_ids)["tokens"][:, : length - 1]  # (C, T, W)
        else:
            text = self.embedding(token_ids[:, : length - 1])  # (C, T, W)
        targets = token_ids[:, 1:length]  # (C, T)
        b, c = image.shape[0], text.shape[0]
        per_call = max(1, ROWS_PER_CALL // c)  # images per call
        out = []
        for start in range(0, b, per_call):
            img = image[start : start + per_call]  # (b', Q, W)
            n = img.shape[0]
            logits = self.decoder(
                img.repeat_interleave(c, dim=0), text.repeat(n, 1, 1), image_encoded=True
            )  # (b' * C, T, V)
            log_probs = torch.log_softmax(logits.float(), dim=-1)  # (b' * C, T, V)
            ll = log_probs.gather(-1, targets.repeat(n, 1).unsqueeze(-1)).squeeze(-1)  # (b' * C, T)
            out.append(ll.view(n, c, -1))
        ll = torch.cat(out)  # (B, C, T)
        return torch.nn.functional.pad(ll, (0, full - length))  # (B, C, L - 1): 0 where cut


def published_coca_head(model: nn.Module, exported: dict[str, torch.Tensor]) -> dict | None:
    """A saved-head entry (``{"type", "options", "state"}``, as checkpoints keep them) for the
    ``text_decoder.*`` that published CoCa weights keep beside their towers, or None without one:
    :func:`synclip.load` of ``open_clip:coca_ViT-B-32:<tag>`` then captions with open_clip's decoder."""
    decoder = {k: v for k, v in exported.items() if k.startswith("text_decoder.")}
    if not decoder or not coca_layout(model):
        return None
    settings = coca_decoder_settings(model, "tower", None, None, None, None)
    state = {"settings": settings, "text_input": "tower", "decoder": decoder, "embedding": None}
    return {"type": "caption", "options": {}, "state": state}


def decode_captions(model: nn.Module, ids: torch.Tensor) -> list[str]:
    """Generated token ids (B, L) -> captions: the text between the start and the first end token."""
    from synclip.data.tokenizer import get_tokenizer

    tokenizer = getattr(model, "tokenizer", None) or get_tokenizer(
        int(model.context_length), getattr(model, "tokenizer_file", None)
    )
    return [tokenizer.decode(row) for row in ids.tolist()]


def caption_heads(model: nn.Module) -> dict[str, CaptionHead]:
    """The model's captioning decoders (``model.heads`` set by :func:`synclip.load`), empty if none."""
    heads = getattr(model, "heads", None) or {}
    return {name: head for name, head in heads.items() if isinstance(head, CaptionHead)}
