"""A captioning text decoder over the image tower's tokens, built from open_clip's CoCa modules.

- [0] Yu et al., CoCa: Contrastive Captioners are Image-Text Foundation Models, 2022,
  https://arxiv.org/abs/2205.01917 (Sec. 3.2: a unimodal text decoder, then a multimodal decoder
  that cross-attends to the image encoder's outputs; attentional pooling, n_query = 256 for the
  generative loss).
- [1] Tschannen et al., Image Captioners Are Scalable Vision Learners Too (CapPa), 2023,
  https://arxiv.org/abs/2306.07915 (a plain encoder-decoder captioner with parallel prediction).

The layers are open_clip's own: ``text_decoder`` is an ``open_clip.transformer.MultimodalTransformer``
(causal self-attention blocks ``resblocks.*`` interleaved with cross-attention blocks ``cross_attn.*``,
then ``ln_final`` and ``text_projection`` (W, V) to the vocabulary), built as ``open_clip.coca_model``'s
``_build_text_decoder_tower`` does; ``image_pool`` is open_clip's ``AttentionalPooler``.

With open_clip's CoCa towers (:mod:`synclip.models.coca_towers`) the image tower pools, so the decoder
has no ``image_pool`` (``n_queries=None``) and ``text_decoder.*`` is exported as it is: open_clip's
``CoCa`` loads it with ``strict=True``. On a plain CLIP tower, ``image_pool`` pools the patch tokens
after ``ln_post`` (CLS left out), which open_clip's CoCa does not do (it pools all tokens before
``ln_post``), so that layout is not exported to open_clip (see :mod:`synclip.objectives.caption`).

CoCa's decoder input is the unimodal text tower's per-token output for ``tokens[:, :-1]`` (open_clip:
``CoCa.text`` with ``embed_cls``, tokens taken before ``ln_final``); for CapPa, :class:`TokenEmbedding`
embeds the ids itself and provides the [MASK] token of parallel prediction.
"""

from __future__ import annotations

import torch
from open_clip.transformer import AttentionalPooler, LayerNorm, MultimodalTransformer, QuickGELU
from torch import nn

# open_clip's ``MultimodalCfg`` defaults (open_clip/coca_model.py): attentional pooler queries and heads
N_QUERIES = 256
POOLER_HEADS = 8


def _init_decoder(decoder: MultimodalTransformer) -> None:
    """open_clip's text-tower initialisation, applied to the decoder's blocks and projection.

    ``MultimodalTransformer`` leaves ``text_projection`` as ``torch.empty`` and its own
    ``init_parameters`` is never called, so we initialise it here (the scheme of
    ``open_clip.transformer.TextTransformer.init_parameters``).
    """
    width, layers = decoder.width, decoder.layers
    proj_std = width**-0.5 * (2 * layers) ** -0.5
    attn_std = width**-0.5
    fc_std = (2 * width) ** -0.5
    for block in [*decoder.resblocks, *decoder.cross_attn]:
        nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
    nn.init.normal_(decoder.text_projection, std=width**-0.5)


class CaptionDecoder(nn.Module):
    """Multimodal text decoder: text embeddings (B, L, W) + image tokens (B, P, W_img) -> logits (B, L, V).

    Args:
        vocab_size: V, the output vocabulary (open_clip's ``text_decoder`` projects to it).
        width, layers, heads: the decoder's transformer (self- and cross-attention blocks per layer).
        context_length: longest text sequence the causal mask covers.
        image_width: W_img, width of the image tower's tokens.
        n_queries: attentional pooler queries (CoCa: 256); ``None`` feeds the image tokens to the
            cross-attention as they are (CapPa), which needs ``image_width == width``.
        pooler_heads: heads of the attentional pooler (open_clip's default 8).
        mlp_ratio: MLP width / width in every block (open_clip's 4).
        quick_gelu, ls_init_value: the activation and layer scale of open_clip's
            ``_build_text_decoder_tower`` (the model config's ``quick_gelu``, ``multimodal_cfg.ls_init_value``).
    """

    def __init__(
        self,
        vocab_size: int,
        width: int,
        layers: int,
        heads: int,
        context_length: int,
        image_width: int,
        n_queries: int | None = N_QUERIES,
        pooler_heads: int = POOLER_HEADS,
        mlp_ratio: float = 4.0,
        quick_gelu: bool = False,
        ls_init_value: float | None = None,
    ):
        super().__init__()
        if n_queries is None and image_width != width:
            raise ValueError(f"without a pooler the image width ({image_width}) must equal width ({width})")
        self.vocab_size = vocab_size
        self.width = width
        self.heads = heads
        self.context_length = context_length
        if n_queries is None:
            self.image_pool = None
            self.image_norm = None
        else:
            self.image_pool = AttentionalPooler(width, image_width, n_head=pooler_heads, n_queries=n_queries)
            self.image_norm = LayerNorm(width)
        self.text_decoder = MultimodalTransformer(
            width=width,
            layers=layers,
            heads=heads,
            context_length=context_length,
            mlp_ratio=mlp_ratio,
            ls_init_value=ls_init_value,
            act_layer=QuickGELU if quick_gelu else nn.GELU,
            output_dim=vocab_size,
        )
        _init_decoder(self.text_decoder)

    def encode_image(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """Image tower tokens (B, P, W_img) -> what the decoder cross-attends to, (B, Q, W)."""
        if self.image_pool is None:
            return image_tokens
        return self.image_norm(self.image_pool(image_tokens))  # (B, n_queries, W)

    def _self_attention_mask(self, b: int, length: int, parallel: torch.Tensor, dtype) -> torch.Tensor:
        """Additive self-attention mask (B * heads, L, L): causal, or all zeros for parallel rows."""
        causal = self.text_decoder.attn_mask[:length, :length].to(dtype)  # (L, L), -inf above diagonal
        mask = causal.unsqueeze(0).expand(b, -1, -1)  # (B, L, L)
        mask = torch.where(parallel.view(b, 1, 1), torch.zeros_like(mask), mask)  # (B, L, L)
        return mask.repeat_interleave(self.heads, dim=0)  # (B * heads, L, L), batch-major like MHA

    def forward(
        self,
        image_tokens: torch.Tensor,
        text_embs: torch.Tensor,
        parallel: torch.Tensor | None = None,
        image_encoded: bool = False,
    ) -> torch.Tensor:
        """Logits (B, L, V) for every position of ``text_embs`` (B, L, W).

        ``image_tokens`` are the image tower's tokens (B, P, W_img), or the output of
        :meth:`encode_image` (B, Q, W) with ``image_encoded=True`` (generation encodes once).
        ``parallel`` (B,) bool drops the causal mask for those rows (CapPa's parallel prediction,
        see :func:`synclip.losses.caption.parallel_prediction_inputs`).
        """
        image = image_tokens if image_encoded else self.encode_image(image_tokens)  # (B, Q, W)
        if parallel is None or not bool(parallel.any()):
            return self.text_decoder(image, text_embs)  # open_clip's own causal forward
        decoder = self.text_decoder
        b, length = text_embs.shape[:2]
        mask = self._self_attention_mask(b, length, parallel, text_embs.dtype)  # (B * heads, L, L)
        x = text_embs  # (B, L, W)
        for block, cross in zip(decoder.resblocks, decoder.cross_attn):
            x = block(x, attn_mask=mask)  # self-attention over the text
            x = cross(x, k_x=image, v_x=image)  # cross-attention to the image, (B, L, W)
        return decoder.ln_final(x) @ decoder.text_projection  # (B, L, W) @ (W, V) -> (B, L, V)


class TokenEmbedding(nn.Module):
    """Token ids (B, L) -> decoder inputs (B, L, W) for a decoder without a text tower (CapPa [1]).

    Learned token and position embeddings; with ``mask_token`` one extra row, id ``vocab_size`` (as in
    big_vision's CapPa ``Decoder``), is the [MASK] input of parallel prediction (``mask_id``).
    Initialisation: token embeddings N(0, 1) as big_vision's CapPa ``EmbedTargets``; positions
    N(0, 0.01) as open_clip's text tower (our choice).
    """

    def __init__(self, vocab_size: int, width: int, context_length: int, mask_token: bool = True):
        super().__init__()
        self.mask_id = vocab_size if mask_token else None
        self.token_embedding = nn.Embedding(vocab_size + int(mask_token), width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        return self.token_embedding(ids) + self.positional_embedding[:length]  # (B, L, W)
