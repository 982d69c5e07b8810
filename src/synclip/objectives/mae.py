"""Masked autoencoding of pixels, on its own or beside CLIP on the same image tower.

- [0] He et al., Masked Autoencoders Are Scalable Vision Learners, 2022,
  https://arxiv.org/abs/2111.06377: the encoder sees only the visible patches (75% are removed at
  random); a light decoder gets the encoded visible tokens plus a shared learned mask token at every
  masked position, adds its own positional embedding, and predicts each masked patch's pixels,
  normalised per patch (``norm_pix_loss``); MSE on the masked patches only.
- [1] Weers et al., Masked Autoencoding Does Not Help Natural Language Supervision at Scale, 2023,
  https://arxiv.org/abs/2301.07836: MAE and CLIP trained jointly on one image encoder (CLIP on the
  full image, MAE on a masked copy); a benefit on 11.3M pairs, little or none on 1.4B.

The decoder here starts from the encoder's patch tokens (the CLS token is not passed on) and is a
small open_clip transformer (``decoder_depth`` 1-2 blocks of ``decoder_width``), as light as [1]'s use
beside CLIP calls for; MAE's own decoder has 8 blocks of width 512.
"""

from __future__ import annotations

import torch
from open_clip.transformer import Transformer
from torch import nn

from synclip.losses.mae import masked_patch_mse, normalise_patches, patchify
from synclip.objectives.base import Encoded, Objective, Read
from synclip.objectives.mim_distill import check_mask, mim_width
from synclip.registry import OBJECTIVES


@OBJECTIVES.register("mae")
class Mae(Objective):
    """Reconstruct the masked patches of ``image_view`` from the visible ones (``mask_view`` marks masked).

    The default ``mask_view`` is ``image_mask_mae`` (75% uniform random); with ``norm_pix`` the targets
    are per-patch-normalised pixels of the view (which is already mean/std normalised).
    """

    def __init__(
        self,
        model: nn.Module,
        source: str = "pairs",
        decoder_depth: int = 1,
        decoder_width: int = 256,
        decoder_heads: int | None = None,
        norm_pix: bool = True,
        image_view: str = "image",
        mask_view: str = "image_mask_mae",
    ):
        super().__init__(model, source)
        width = mim_width(model, "mae")
        if decoder_depth < 1:
            raise ValueError(f"mae decoder_depth must be at least 1, got {decoder_depth}")
        heads = decoder_heads or max(1, decoder_width // 64)
        if decoder_width % heads:
            raise ValueError(f"mae decoder_width {decoder_width} must be a multiple of decoder_heads {heads}")
        self.image_view, self.mask_view, self.norm_pix = image_view, mask_view, norm_pix
        self.patch = int(model.visual.patch_size[0])
        grid_h, grid_w = (int(g) for g in model.visual.grid_size)
        self.patches = grid_h * grid_w
        self.embed = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.empty(decoder_width))
        self.pos = nn.Parameter(torch.empty(self.patches, decoder_width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.decoder = Transformer(decoder_width, decoder_depth, heads)
        self.norm = nn.LayerNorm(decoder_width)
        self.pixels = nn.Linear(decoder_width, self.patch * self.patch * 3)

    def reads(self) -> list[Read]:
        # the encoder sees only the visible patches, encoded in forward (not through the shared memo)
        return [
            Read(self.image_view, "image", self.source, memo=False),
            Read(self.mask_view, None, self.source),
        ]

    def _encode(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        images, mask = batch[self.source][self.image_view], batch[self.source][self.mask_view]
        masked = check_mask(mask, self.patches, self.mask_view)
        order = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)  # (B, P): visible first, in order
        keep = order[:, : self.patches - masked]  # (B, K) visible patch indices
        return {"tokens": model.image_outputs(images, keep=keep)["tokens"], "keep": keep}  # (B, K, W)

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        out = enc.memo(("mae", id(self)), lambda b: self._encode(enc.model, b))
        images, mask = batch[self.source][self.image_view], batch[self.source][self.mask_view]
        visible = self.embed(out["tokens"])  # (B, K, Wd)
        b, _, wd = visible.shape
        tokens = self.mask_token.to(visible.dtype).expand(b, self.patches, wd)  # (B, P, Wd)
        index = out["keep"].unsqueeze(-1).expand(-1, -1, wd)  # (B, K, Wd)
        tokens = tokens.scatter(1, index, visible) + self.pos.to(visible.dtype)  # (B, P, Wd)
        pred = self.pixels(self.norm(self.decoder(tokens))).float()  # (B, P, p * p * 3)
        target = patchify(images.float(), self.patch)  # (B, P, p * p * 3)
        if self.norm_pix:
            target = normalise_patches(target)
        return {"loss": masked_patch_mse(pred, target, mask)}
