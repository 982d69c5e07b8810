"""Patch embeddings of an open_clip ViT with masked image modelling's two ways of hiding patches.

This is ``open_clip.transformer.VisionTransformer._embeds`` (patchify, CLS token, positional embedding,
``ln_pre``) with two additions, and without the architecture's own random patch dropout, which would
break the alignment between output tokens and the mask:

- ``mask`` + ``mask_token`` (BEiT, Bao et al. 2021, https://arxiv.org/abs/2106.08254; EVA, Fang et al.
  2023, https://arxiv.org/abs/2211.07636): the embeddings of masked patches are replaced by a learned
  mask token *before* the positional embedding is added, so the token still says where it sits;
  every patch position goes through the transformer.
- ``keep`` (MAE, He et al. 2022, https://arxiv.org/abs/2111.06377): only the kept patches (and the CLS
  token) go through the transformer, after the positional embedding was added.

Images of another size than the tower's (the small local crops of multi-crop self-distillation) get the
positional embedding resized bicubically to their patch grid, as DINO does for its 96 px local crops
(Caron et al. 2021, https://arxiv.org/abs/2104.14294; ``interpolate_pos_encoding`` in
facebookresearch/dino ``vision_transformer.py``); their side must be a multiple of the patch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer


def positional_embedding(visual: VisionTransformer, grid: tuple[int, int]) -> torch.Tensor:
    """The tower's positional embedding (1 + P, W) for a ``grid`` = (rows, columns) of patches: as
    trained for the tower's own grid, resized bicubically (the CLS position kept) for any other."""
    pos = visual.positional_embedding  # (1 + gh * gw, W)
    own = tuple(int(g) for g in visual.grid_size)
    if tuple(grid) == own:
        return pos
    width = pos.shape[-1]
    patches = pos[1:].reshape(1, own[0], own[1], width).permute(0, 3, 1, 2)  # (1, W, gh, gw)
    resized = F.interpolate(patches.float(), size=tuple(grid), mode="bicubic", align_corners=False)
    resized = resized.to(pos.dtype).permute(0, 2, 3, 1).reshape(-1, width)  # (h * w, W)
    return torch.cat([pos[:1], resized], dim=0)  # (1 + h * w, W)


def patch_grid(visual: VisionTransformer, image: torch.Tensor) -> tuple[int, int]:
    """(rows, columns) of patches of ``image`` (B, 3, H, W); H and W must be multiples of the patch size."""
    ph, pw = (int(p) for p in visual.patch_size)
    h, w = image.shape[-2:]
    if h % ph or w % pw:
        raise ValueError(
            f"images of {h} x {w} px do not split into {ph} x {pw} px patches; give crops whose side is "
            f"a multiple of {ph} (e.g. the image_local view's size)"
        )
    return h // ph, w // pw


def masked_embeds(
    visual: VisionTransformer,
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images (B, 3, H, W) -> transformer input (B, 1 + P, W) with ``mask``, or (B, 1 + K, W) with ``keep``.

    ``mask`` is (B, P) bool (True = masked) and ``mask_token`` (W,); ``keep`` is (B, K) long indices of
    the patches to encode, in [0, P).
    """
    if (mask is None) != (mask_token is None):
        raise ValueError("image_outputs: pass `mask` and `mask_token` together")
    grid = patch_grid(visual, image)
    x = visual.conv1(image)  # (B, W, grid_h, grid_w)
    x = x.flatten(2).transpose(1, 2)  # (B, P, W), row-major patch order
    b, p, w = x.shape
    if mask is not None:
        if mask.shape != (b, p):
            raise ValueError(f"mask must be (B, P) = {(b, p)} for these images, got {tuple(mask.shape)}")
        hidden = mask.unsqueeze(-1).to(x.dtype)  # (B, P, 1), 1 at masked patches
        x = x * (1 - hidden) + mask_token.to(x.dtype) * hidden  # (B, P, W)
    cls = visual.class_embedding.to(x.dtype).expand(b, 1, w)  # (B, 1, W)
    x = torch.cat([cls, x], dim=1) + positional_embedding(visual, grid).to(x.dtype)  # (B, 1 + P, W)
    if keep is not None:
        if keep.ndim != 2 or keep.shape[0] != b:
            raise ValueError(f"keep must be (B, K) patch indices with B = {b}, got {tuple(keep.shape)}")
        kept = torch.gather(x[:, 1:], 1, keep.unsqueeze(-1).expand(-1, -1, w))  # (B, K, W)
        x = torch.cat([x[:, :1], kept], dim=1)  # (B, 1 + K, W)
    return visual.ln_pre(x)
