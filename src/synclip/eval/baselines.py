"""Reference "models" with no learning, for reading image-only metrics against something other than chance.

:class:`PixelModel` uses the preprocessed pixels themselves as the image embedding (flattened, so
cosine similarity compares whole images pixel by pixel). On the emoji corpus two styles' drawings of
one emoji share colours and layout (flags, keycaps, coloured shapes), so pixels retrieve across styles
far above chance: a trained tower should be read against this floor, not only against chance.
It has no text tower; use it with image-only tasks (``image_retrieval``, ``linear_probe``, ``knn``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PixelModel(torch.nn.Module):
    """``encode_image``: (B, 3, H, W) preprocessed images -> (B, 3 * H * W) flattened pixels."""

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = images.flatten(1)  # (B, 3 * H * W)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        raise TypeError(
            "PixelModel has no text tower: evaluate it on image-only tasks (image_retrieval, knn)"
        )
