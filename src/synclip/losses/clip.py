"""Bidirectional InfoNCE between two modalities (CLIP), distributed as local rows x global columns.

- [0] Radford et al., Learning Transferable Visual Models From Natural Language Supervision, 2021,
  https://arxiv.org/abs/2103.00020
- open_clip's ``ClipLoss(local_loss=True, gather_with_grad=True)``: each rank scores its B local rows
  against all N = world * B columns; labels are offset by ``rank * B``. Summed over ranks and
  averaged by DDP this is exactly the loss and gradient of one process on the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synclip import distributed as dist


def contrastive_logits(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local-vs-global logits and targets.

    Args:
        image: (B, D) L2-normalised image embeddings of this rank.
        text: (B, D) L2-normalised text embeddings of this rank.
        logit_scale: scalar multiplier (already exponentiated).

    Returns:
        logits_per_image (B, N), logits_per_text (B, N), targets (B,) with N = world * B.
    """
    all_image = dist.all_gather(image)  # (N, D)
    all_text = dist.all_gather(text)  # (N, D)
    logits_per_image = logit_scale * image @ all_text.T  # (B, D) @ (D, N) -> (B, N)
    logits_per_text = logit_scale * text @ all_image.T  # (B, N)
    b = image.shape[0]
    targets = torch.arange(b, device=image.device) + dist.rank() * b  # (B,)
    return logits_per_image, logits_per_text, targets


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> dict:
    """Symmetric cross-entropy of CLIP: mean of image->text and text->image terms.

    Returns ``{"loss", "acc"}`` where ``acc`` is the mean top-1 matching accuracy of both directions.
    """
    logits_per_image, logits_per_text, targets = contrastive_logits(image, text, logit_scale)
    loss = (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2
    with torch.no_grad():
        acc = (
            (logits_per_image.argmax(-1) == targets).float().mean()
            + (logits_per_text.argmax(-1) == targets).float().mean()
        ) / 2
    return {"loss": loss, "acc": acc}


def image_to_text_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> dict:
    """One direction of CLIP's loss: each image against every text of the global batch, its own text
    the target. DeCLIP trains its nearest-neighbour supervision with this term only (its solver passes
    image-to-neighbour logits in both argument slots of ``ClipInfoCELoss``).

    Returns ``{"loss", "acc"}`` with ``acc`` the image-to-text top-1 matching accuracy.
    """
    logits_per_image, _, targets = contrastive_logits(image, text, logit_scale)  # (B, N), (B,)
    loss = F.cross_entropy(logits_per_image, targets)
    with torch.no_grad():
        acc = (logits_per_image.argmax(-1) == targets).float().mean()
    return {"loss": loss, "acc": acc}
