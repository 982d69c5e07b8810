"""Normalised image and text features of a model, computed in batches without gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image


@torch.no_grad()
def encode_images(
    model, images: Sequence[Image.Image], preprocess, device, batch_size: int = 256
) -> torch.Tensor:
    """PIL images -> (N, D) unit-length features on the CPU."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.stack([preprocess(im) for im in images[start : start + batch_size]]).to(
            device
        )  # (b, 3, H, W)
        out.append(model.encode_image(x, normalize=True).float().cpu())
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def encode_texts(model, tokenizer, texts: Sequence[str], device, batch_size: int = 256) -> torch.Tensor:
    """Strings -> (N, D) unit-length features on the CPU."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start : start + batch_size])).to(device)  # (b, L)
        out.append(model.encode_text(tokens, normalize=True).float().cpu())
    model.train(was_training)
    return torch.cat(out)
