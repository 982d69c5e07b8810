"""The two-tower model: image and text encoders, nothing else.

It is an ``open_clip.model.CLIP`` without the logit scale (temperatures belong to objectives), so its
state dict has open_clip's layout and a checkpoint of a standard architecture loads into
``open_clip.create_model`` after re-adding what the objectives export, ``logit_scale`` first
(see ``synclip.models.factory.open_clip_state_dict`` and ``Objective.export_state``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import VisionTransformer, text_global_pool

from synclip.models.hf_text import build_hf_text, hf_text_outputs
from synclip.models.locking import image_forward, keep_locked_in_eval, no_grad_when_locked
from synclip.models.masked_embed import masked_embeds
from synclip.models.text_masking import gather_kept, text_keep_index

NO_DECODER = (
    "{name} has no captioning decoder (no head with generate in model.heads): train a recipe with a "
    "caption objective (coca, cappa, siglip_caption) and load it with synclip.load"
)


def coca_pooling(visual: VisionTransformer) -> bool:
    """Whether ``visual`` pools as open_clip's CoCa ViT: one attentional pooler over all tokens (CLS
    included) before ``ln_post``, whose first query is the contrastive embedding and whose other queries
    are the tokens the captioning decoder reads (``open_clip.transformer.VisionTransformer._pool``)."""
    return visual.attn_pool is not None and getattr(visual, "attn_pool_contrastive", None) is None


def drop_patches(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep the CLS token and a random ``1 - fraction`` of the other tokens of each row (B, 1 + P, W)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"patch dropout must lie in [0, 1), got {fraction}")
    b, n = x.shape[0], x.shape[1] - 1
    keep = max(1, int(n * (1 - fraction)))
    index = torch.rand(b, n, device=x.device).argsort(dim=1)[:, :keep] + 1  # (B, keep), skips CLS
    patches = torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, keep, W)
    return torch.cat([x[:, :1], patches], dim=1)  # (B, 1 + keep, W)


def image_tower_outputs(
    visual: torch.nn.Module,
    image: torch.Tensor,
    patch_dropout: float = 0.0,
    mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    name: str = "model",
) -> dict[str, torch.Tensor]:
    """:meth:`TwoTower.image_outputs` for any image tower ``visual`` (the model's, or an EMA teacher's
    copy of it). A ViT also takes images of another size than its own (multi-crop local crops): their
    positional embedding is resized to their patch grid (:mod:`synclip.models.masked_embed`)."""
    masking = mask is not None or mask_token is not None or keep is not None
    vit = isinstance(visual, VisionTransformer)
    if not vit or (visual.attn_pool is not None and (masking or not coca_pooling(visual))):
        if masking:
            raise ValueError(f"{name}: mask / keep need a plain ViT image tower")
        return {"embed": image_forward(visual, image)}  # a locked timm trunk runs without grad
    if masking and patch_dropout > 0:
        raise ValueError("image_outputs: patch_dropout cannot be combined with mask / keep")
    if masking:
        x = masked_embeds(visual, image, mask, mask_token, keep)  # (B, 1 + P or 1 + K, W)
    elif tuple(image.shape[-2:]) != tuple(visual.image_size):
        x = visual.patch_dropout(masked_embeds(visual, image))  # (B, 1 + P', W), resized positions
    else:
        x = visual._embeds(image)  # (B, 1 + P, W), the config's patch dropout applied when enabled
    if patch_dropout > 0:
        x = drop_patches(x, patch_dropout)  # (B, 1 + P', W)
    x = visual.transformer(x)  # (B, 1 + P, W)
    # plain ViT: (B, W) CLS or mean, (B, P, W) patches after ln_post; CoCa's attentional pooler:
    # (B, D) its first query, (B, Q - 1, D) the other queries, after ln_post
    pooled, tokens = visual._pool(x)
    embed = pooled @ visual.proj if visual.proj is not None else pooled  # (B, D)
    return {"embed": embed, "pooled": pooled, "tokens": tokens}


class TwoTower(CLIP):
    """open_clip's CLIP towers with richer outputs for objectives.

    ``encode_image`` / ``encode_text`` behave as in open_clip (pooled, projected embeddings).
    ``image_outputs`` / ``text_outputs`` also return the pre-projection pooled feature and the
    per-token features that SimCLR heads, MLM heads and MIM objectives need.

    A config whose ``text_cfg`` names ``hf_model_name`` gets a pre-trained Hugging Face text tower
    instead of open_clip's text transformer, held as ``text`` (open_clip's ``CustomTextCLIP`` layout;
    :mod:`synclip.models.hf_text`); ``tokenizer_file`` is then its ``tokenizer.json``.
    """

    tokenizer_file: str | None = None  # a Hugging Face text tower's tokenizer.json, else open_clip's BPE

    def __init__(self, name: str, embed_dim: int, vision_cfg: dict, text_cfg: dict, **kwargs):
        hf = text_cfg.get("hf_model_name")
        # with a Hugging Face text tower, open_clip's CLIP builds a tiny placeholder text transformer
        # that is removed right after (CLIP's constructor expects its own text tower)
        own_text = {
            "context_length": text_cfg.get("context_length", 77),
            "width": 8,
            "heads": 1,
            "layers": 1,
            "vocab_size": 1,
        }
        super().__init__(embed_dim, vision_cfg, own_text if hf else text_cfg, **kwargs)
        del self.logit_scale  # owned by the objectives that need one
        self.text = None
        if hf:
            for attr in (
                "transformer",
                "token_embedding",
                "positional_embedding",
                "ln_final",
                "text_projection",
            ):
                delattr(self, attr)
            self.text = build_hf_text(text_cfg, embed_dim)
            self.vocab_size = self.text.vocab_size
            self.tokenizer_file = self.text.tokenizer_file
            text_cfg = {**text_cfg, "width": self.text.config.hidden_size}
        self._describe(name, embed_dim, vision_cfg.get("width", embed_dim), text_cfg.get("width", embed_dim))

    def _describe(self, name: str, embed_dim: int, vision_width: int, text_width: int) -> None:
        """The sizes objectives read: ``image_size``, ``patch_size`` (ViT towers, else None), widths."""
        self.name = name
        self.embed_dim = embed_dim
        self.image_size = int(self.visual.image_size[0])
        patch = getattr(self.visual, "patch_size", None)  # (h, w) for ViT towers
        self.patch_size = int(patch[0]) if patch is not None else None
        self.vision_width = vision_width  # width of image_outputs' "pooled" and "tokens"
        self.text_width = text_width
        self.text_mask_ratio = 0.0  # FLIP's text masking in training (synclip.models.text_masking)
        self.eval_modules: tuple[str, ...] = ()  # locked parts kept in eval mode (synclip.models.locking)

    def train(self, mode: bool = True) -> TwoTower:
        super().train(mode)
        keep_locked_in_eval(self)  # a locked tower's dropout stays off, its BatchNorm statistics as loaded
        return self

    @no_grad_when_locked("image")
    def image_outputs(
        self,
        image: torch.Tensor,
        patch_dropout: float = 0.0,
        mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode images (B, 3, H, W).

        Returns ``embed`` (B, D) projected, not normalised; for ViT towers also ``pooled`` (B, W), the
        feature before the projection, and ``tokens`` (B, P, W), the patch features after the final norm.
        A CoCa ViT (:func:`coca_pooling`) returns its attentional pooler's outputs instead: ``pooled``
        (B, D) the first query, ``tokens`` (B, Q - 1, D) the others, as open_clip's ``CoCa`` does.
        ``patch_dropout`` (FLIP, Li et al. 2023, https://arxiv.org/abs/2212.00794) keeps a random
        ``1 - patch_dropout`` of the patch tokens of each image (and always the CLS token), on top of
        the architecture's own patch dropout; objectives use it on their self-supervised views.
        Masked image modelling (ViT towers, see :mod:`synclip.models.masked_embed`): ``mask`` (B, P)
        bool with ``mask_token`` (W,) replaces masked patch embeddings (BEiT / EVA) and returns
        ``tokens`` for all P; ``keep`` (B, K) long encodes only those patches (MAE), ``tokens`` (B, K, W).
        """
        return image_tower_outputs(self.visual, image, patch_dropout, mask, mask_token, keep, self.name)

    @no_grad_when_locked("text")
    def text_outputs(self, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode token ids (B, L) -> ``embed`` (B, D), ``pooled`` (B, W), ``tokens`` (B, L, W).

        In training with ``text_mask_ratio`` > 0 (FLIP's text masking) only the kept tokens are
        encoded and ``tokens`` is (B, L', W), L' the longest kept caption."""
        if self.text is not None:
            return hf_text_outputs(self.text, text)
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(text).to(cast_dtype)  # (B, L, W)
        x = x + self.positional_embedding.to(cast_dtype)
        attn_mask = self.attn_mask
        if self.training and self.text_mask_ratio > 0:  # FLIP's text masking: encode kept tokens only
            index, kept = text_keep_index(text, self.text_mask_ratio)  # (B, L'), (B, 1)
            text, x = gather_kept(text, x, index, kept)  # (B, L'), (B, L', W)
            attn_mask = attn_mask[: text.shape[1], : text.shape[1]] if attn_mask is not None else None
        x = self.transformer(x, attn_mask=attn_mask)  # (B, L, W)
        tokens = self.ln_final(x)  # (B, L, W)
        pooled = text_global_pool(tokens, text, self.text_pool_type, getattr(self, "text_eos_id", None))
        if self.text_projection is None:
            embed = pooled
        elif isinstance(self.text_projection, torch.nn.Linear):
            embed = self.text_projection(pooled)
        else:
            embed = pooled @ self.text_projection  # (B, W) @ (W, D) -> (B, D)
        return {"embed": embed, "pooled": pooled, "tokens": tokens}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if self.text is None:
            return super().set_grad_checkpointing(enable)
        self.visual.set_grad_checkpointing(enable)
        self.text.set_grad_checkpointing(enable)

    def generate(self, images, **options) -> list[str]:
        """One caption per image (a (B, 3, H, W) tensor or PIL images) from the captioning decoder in
        ``heads`` (set by ``synclip.load``); ``options`` go to its ``generate`` (``method`` "greedy",
        "beam" or "sample", ``max_len``, ``temperature``, ``beams``, ...)."""
        heads = [h for h in (getattr(self, "heads", None) or {}).values() if hasattr(h, "generate")]
        if not heads:
            raise ValueError(NO_DECODER.format(name=self.name))
        return heads[0].generate(self, images, **options)

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        embed = self.image_outputs(image)["embed"]
        return F.normalize(embed, dim=-1) if normalize else embed

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        embed = self.text_outputs(text)["embed"]
        return F.normalize(embed, dim=-1) if normalize else embed
