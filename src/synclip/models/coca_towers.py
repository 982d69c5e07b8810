"""The towers of open_clip's ``CoCa``, built by open_clip's own tower builders, for ``coca`` configs.

Yu et al., CoCa: Contrastive Captioners are Image-Text Foundation Models, 2022,
https://arxiv.org/abs/2205.01917. open_clip's implementation (``open_clip/coca_model.py``), which a
synclip ``coca`` run must match so that its export loads into ``open_clip.create_model`` and captions
the same there:

- image tower: a ``VisionTransformer`` with ``attentional_pool``: one ``AttentionalPooler`` reads all
  tokens (CLS included) before ``ln_post``; the first pooled query (after ``ln_post``, times ``proj``)
  is the contrastive embedding, the other queries are what the multimodal decoder cross-attends to
  (``output_tokens``);
- text tower: a ``TextTransformer`` with ``embed_cls``: a learned CLS embedding appended after the
  tokens (one more position), ``ln_final`` and the projection applied to it alone; the per-token
  outputs the decoder reads are taken before ``ln_final``;
- ``text_decoder``: a ``MultimodalTransformer`` (``multimodal_cfg``); in synclip it is the ``caption``
  objective's (:mod:`synclip.objectives.caption`), which exports it as ``text_decoder.*`` beside the
  towers, and ``logit_scale`` is the ``clip`` objective's.

A config is a CoCa config when it has ``multimodal_cfg`` (open_clip's rule, with ``custom_text``).
The state dict has open_clip's ``CoCa`` layout: ``visual.*``, ``text.*``. synclip's configs:
``coca-tiny-vit-48`` (the ``coca`` recipe's model: ``tiny-vit-48``'s towers with open_clip's CoCa
pooler defaults, 256 queries and 8 heads, and a decoder as deep and wide as the text tower, as
``coca_ViT-B-32``) and ``coca-micro-vit-32`` (tests; 9 pooler queries and one decoder layer, ours,
to stay fast).
"""

from __future__ import annotations

import torch
from open_clip.model import _build_text_tower, _build_vision_tower
from torch import nn

from synclip.models.locking import no_grad_when_locked
from synclip.models.two_tower import TwoTower


class CocaTowers(TwoTower):
    """open_clip's CoCa image and text towers (``visual``, ``text``) behind synclip's tower interface.

    ``text_outputs`` returns CoCa's per-token text features (before ``ln_final``, without the CLS
    position) as ``tokens``; ``image_outputs`` the attentional pooler's queries (see
    :meth:`TwoTower.image_outputs`). ``multimodal_cfg`` is kept for the captioning decoder.
    The text tower's parts are reachable under CLIP's names (``transformer``, ``token_embedding``, ...)
    for locking and gradient checkpointing; they are registered once, under ``text``.
    """

    def __init__(
        self,
        name: str,
        embed_dim: int,
        vision_cfg: dict,
        text_cfg: dict,
        multimodal_cfg: dict,
        quick_gelu: bool = False,
        cast_dtype: torch.dtype | None = None,
        init_logit_scale: float | None = None,
        init_logit_bias: float | None = None,
    ):
        nn.Module.__init__(self)  # not CLIP's constructor: CoCa keeps the text tower as one module
        del init_logit_scale, init_logit_bias  # temperatures and biases belong to the objectives
        self.visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu, cast_dtype)
        self.text = _build_text_tower(embed_dim, text_cfg, quick_gelu, cast_dtype)
        if getattr(self.text, "cls_emb", None) is None or not getattr(self.visual, "attn_pool", None):
            raise ValueError(
                f"{name}: a CoCa config (one with multimodal_cfg) needs vision_cfg.attentional_pool=true "
                "and text_cfg.embed_cls=true, as open_clip's coca_* configs"
            )
        self.multimodal_cfg = dict(multimodal_cfg)
        self.quick_gelu = bool(quick_gelu)
        self.context_length = int(self.text.context_length)
        self.vocab_size = int(self.text.vocab_size)
        self.text_pool_type = "last"  # CoCa pools the appended CLS position
        # the pooler's queries have the embedding width: that is what "pooled" and "tokens" carry
        self._describe(name, embed_dim, embed_dim, int(self.text.width))

    # CLIP's names for the text tower's parts (locking, set_grad_checkpointing); not registered twice
    transformer = property(lambda self: self.text.transformer)
    token_embedding = property(lambda self: self.text.token_embedding)
    positional_embedding = property(lambda self: self.text.positional_embedding)
    ln_final = property(lambda self: self.text.ln_final)
    text_projection = property(lambda self: self.text.text_projection)
    attn_mask = property(lambda self: self.text.attn_mask)

    @no_grad_when_locked("text")
    def text_outputs(self, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token ids (B, L) -> ``embed`` (B, D), ``pooled`` (B, W) (the CLS position after ``ln_final``)
        and ``tokens`` (B, L, W): CoCa's decoder inputs, before ``ln_final``.

        The computation of ``open_clip.transformer.TextTransformer.forward`` with ``embed_cls``.
        """
        text_tower = self.text
        x, attn_mask = text_tower._embeds(text)  # (B, L + 1, W), CLS appended; causal + padding mask
        x = text_tower.transformer(x, attn_mask=attn_mask)  # (B, L + 1, W)
        pooled = text_tower.ln_final(x[:, -1])  # (B, W)
        tokens = x[:, :-1]  # (B, L, W)
        projection = text_tower.text_projection
        if projection is None:
            embed = pooled
        elif isinstance(projection, nn.Linear):
            embed = projection(pooled)
        else:
            embed = pooled @ projection  # (B, W) @ (W, D) -> (B, D)
        return {"embed": embed, "pooled": pooled, "tokens": tokens}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)
        self.text.set_grad_checkpointing(enable)
