"""Unit-length image and text features of a model, in batches, without gradients.

As in CLIP_benchmark, features are L2-normalised (``encode_*(..., normalize=True)``) and returned as
float32 on the CPU, so that metrics and caches never depend on the device the model runs on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from PIL import Image


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model.eval()`` inside the block, its previous train/eval mode restored after (even on error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _as_image(item) -> Image.Image:
    """A dataset item -> its PIL image: the item itself, ``item["image"]`` or ``item[0]``."""
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, dict):
        return item["image"]
    if isinstance(item, (tuple, list)):
        return item[0]
    raise TypeError(f"cannot find an image in a dataset item of type {type(item).__name__}")


def _input_dtype(model: torch.nn.Module) -> torch.dtype:
    param = next(model.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32


@torch.no_grad()
def encode_images(
    model,
    images: Sequence,
    preprocess: Callable[[Image.Image], torch.Tensor],
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """Images -> (N, D) unit-length float32 features on the CPU.

    ``images``: a list of PIL images, or any map-style dataset (``len`` and ``[i]``) whose items are
    PIL images, dicts with an ``"image"`` or tuples with the image first. Images are read and
    preprocessed one batch at a time, so a lazy dataset never has all of them in memory.
    """
    dtype = _input_dtype(model)
    out = []
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            batch = [
                preprocess(_as_image(images[i])) for i in range(start, min(start + batch_size, len(images)))
            ]
            x = torch.stack(batch).to(device=device, dtype=dtype)  # (b, 3, H, W)
            out.append(model.encode_image(x, normalize=True).float().cpu())  # (b, D)
    if not out:
        raise ValueError("no images to encode")
    return torch.cat(out)  # (N, D)


@torch.no_grad()
def encode_texts(
    model,
    tokenizer: Callable[[list[str]], torch.Tensor],
    texts: Sequence[str],
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """Strings -> (N, D) unit-length float32 features on the CPU."""
    texts = list(texts)
    out = []
    with eval_mode(model):
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[start : start + batch_size]).to(device)  # (b, L)
            out.append(model.encode_text(tokens, normalize=True).float().cpu())  # (b, D)
    if not out:
        raise ValueError("no texts to encode")
    return torch.cat(out)  # (N, D)
