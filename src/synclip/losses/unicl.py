"""UniCL's label-aware bidirectional contrastive loss, distributed as local rows x global columns.

- Yang et al., Unified Contrastive Learning in Image-Text-Label Space (UniCL), CVPR 2022,
  https://arxiv.org/abs/2204.03610: every sample is a triplet (image, text, label y). Image-label
  samples use their class as y, image-text samples one label per unique caption. In each direction,
  the target of a row is uniform over the columns with the same label (weight 1 / |P(i)|).

The paper's L_BiC *sums* the image->text and text->image terms; here they are *averaged*, as
:func:`synclip.losses.clip_loss` does, so that with all-unique labels this loss equals the CLIP loss
exactly (the sum is the same loss times a constant 2, i.e. a different learning rate / weight).
The training code of UniCL is not public (microsoft/UniCL issues #6, #7); this follows the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synclip import distributed as dist


def label_targets(targets: torch.Tensor, all_targets: torch.Tensor) -> torch.Tensor:
    """Row-stochastic target matrix: ``T[i, j] = [y_i == y_j] / |{j : y_i == y_j}|``.

    Args:
        targets: (B,) int64 labels of the local rows.
        all_targets: (N,) int64 labels of the global columns.

    Returns:
        (B, N) float32 targets; every row sums to 1 when the row's own column is among the columns.
    """
    positives = (targets[:, None] == all_targets[None, :]).float()  # (B, N)
    return positives / positives.sum(1, keepdim=True).clamp_min(1)


def unicl_loss(
    image: torch.Tensor, text: torch.Tensor, targets: torch.Tensor, logit_scale: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Mean of UniCL's image->text and text->image label-aware cross-entropies.

    Args:
        image: (B, D) L2-normalised image embeddings of this rank.
        text: (B, D) L2-normalised text embeddings of this rank (row i describes image i).
        targets: (B,) int64 labels; equal labels are positives of each other in both directions.
        logit_scale: scalar multiplier (already exponentiated).

    Returns:
        ``{"loss", "acc", "positives"}``: ``acc`` is the fraction of rows (both directions) whose top
        column has the row's label; ``positives`` the mean number of positives per row (1 for CLIP).
        Every rank must call it with the same B (features and targets are gathered).
    """
    if targets.shape != image.shape[:1] or text.shape != image.shape:
        raise ValueError(
            f"unicl_loss needs image (B, D), text (B, D) and targets (B,); got {tuple(image.shape)}, "
            f"{tuple(text.shape)}, {tuple(targets.shape)}"
        )
    all_image = dist.all_gather(image)  # (N, D), gradients flow back to each rank's rows
    all_text = dist.all_gather(text)  # (N, D)
    all_targets = dist.all_gather(targets, grad=False)  # (N,)
    weights = label_targets(targets, all_targets).to(image.dtype)  # (B, N)
    logits_per_image = logit_scale * image @ all_text.T  # (B, D) @ (D, N) -> (B, N)
    logits_per_text = logit_scale * text @ all_image.T  # (B, N)
    image_to_text = -(weights * F.log_softmax(logits_per_image, dim=-1)).sum(1).mean()
    text_to_image = -(weights * F.log_softmax(logits_per_text, dim=-1)).sum(1).mean()
    loss = (image_to_text + text_to_image) / 2
    with torch.no_grad():
        hit_i = weights.gather(1, logits_per_image.argmax(-1, keepdim=True)) > 0  # (B, 1)
        hit_t = weights.gather(1, logits_per_text.argmax(-1, keepdim=True)) > 0  # (B, 1)
        acc = (hit_i.float().mean() + hit_t.float().mean()) / 2
        positives = (weights > 0).float().sum(1).mean()
    return {"loss": loss, "acc": acc, "positives": positives}
