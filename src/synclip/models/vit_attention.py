"""How much the pooled (class) token of an open_clip ViT attends to each patch, read during a forward.

A-CLIP (Yang et al., Attentive Mask CLIP, ICCV 2023, https://arxiv.org/abs/2212.08653; code
microsoft/A-CLIP ``models.py``: ``forward_features(need_attn=True)`` stacks every block's softmax
attention, averages it over the blocks and then over the heads, and keeps the class token's row
without its own column, ``attn[:, :, 0, 1:]``) scores the patches of an image by this map. Because the
class token is the one aligned with the caption by the contrastive loss, its attention is the paper's
measure of how relevant a patch is to the text; the caption itself is not read.

open_clip's blocks call ``nn.MultiheadAttention`` with ``need_weights=False``; here each block's
attention module is asked for its per-head weights for the length of one forward (a keyword
pre-hook), and the class-token rows are collected (a forward hook). The tower's own code runs
unchanged otherwise. Asking for the weights takes PyTorch off its fused attention kernel, so this is
meant for a no-gradient teacher pass, as A-CLIP uses it.
"""

from __future__ import annotations

import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from synclip.models.masked_embed import masked_embeds


def _attention_modules(visual: VisionTransformer) -> list[nn.MultiheadAttention]:
    blocks = list(visual.transformer.resblocks)
    modules = [getattr(block, "attn", None) for block in blocks]
    if not modules or not all(isinstance(m, nn.MultiheadAttention) for m in modules):
        raise ValueError(
            "class-token attention needs an open_clip ViT whose blocks use nn.MultiheadAttention "
            "(the default block type); this tower's blocks do not"
        )
    return modules


def class_token_attention(
    visual: nn.Module, image: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Encode ``image`` (B, 3, H, W) with every patch and read the class token's attention.

    Returns ``({"pooled": (B, W), "tokens": (B, P, W)}, attention (B, P))``: ``pooled`` is the class
    token after the final norm (before the projection), and ``attention[b, p]`` is the class token's
    softmax attention to patch p, averaged over the blocks and the heads (A-CLIP's averaging order).
    The architecture's random patch dropout is not applied (every patch must be scored).
    """
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise ValueError(
            "class-token attention needs a plain open_clip ViT image tower (no attentional pooler)"
        )
    if visual.pool_type != "tok":
        raise ValueError(
            f"class-token attention needs a tower pooled by its class token (pool_type 'tok'), not "
            f"{visual.pool_type!r}: pick a model without '-avg' (e.g. tiny-vit-48)"
        )
    rows: list[torch.Tensor] = []

    def ask_for_weights(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep_class_row(module, args, kwargs, output):
        weights = output[1]  # (B, heads, 1 + P, 1 + P), softmax over the last dim
        rows.append(weights[:, :, 0, 1:].float())  # (B, heads, P)

    handles = []
    try:
        for module in _attention_modules(visual):
            handles.append(module.register_forward_pre_hook(ask_for_weights, with_kwargs=True))
            handles.append(module.register_forward_hook(keep_class_row, with_kwargs=True))
        x = masked_embeds(visual, image)  # (B, 1 + P, W): no random patch dropout
        x = visual.transformer(x)  # (B, 1 + P, W)
    finally:
        for handle in handles:
            handle.remove()
    pooled, tokens = visual._pool(x)  # (B, W), (B, P, W)
    attention = torch.stack(rows).mean(0).mean(1)  # (L, B, heads, P) -> (B, heads, P) -> (B, P)
    return {"pooled": pooled, "tokens": tokens}, attention
