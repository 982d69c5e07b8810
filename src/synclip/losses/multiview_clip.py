"""DeCLIP's multi-view supervision (MVS): the CLIP loss averaged over image views x text views.

- Li et al., Supervision Exists Everywhere (DeCLIP), ICLR 2022, https://arxiv.org/abs/2110.05208:
  ``mean(CLIP(img1, txt), CLIP(img2, txt), CLIP(img1, txt_eda), CLIP(img2, txt_eda))``.
"""

from __future__ import annotations

import torch

from synclip.losses.clip import clip_loss


def multiview_clip_loss(
    images: torch.Tensor, texts: list[torch.Tensor], logit_scale: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``images`` (B, V, D) and a list of (B, D) text views, all L2-normalised -> ``{"loss", "acc"}``."""
    losses, accs = [], []
    for v in range(images.shape[1]):
        for text in texts:
            out = clip_loss(images[:, v], text, logit_scale)
            losses.append(out["loss"])
            accs.append(out["acc"])
    return {"loss": torch.stack(losses).mean(), "acc": torch.stack(accs).mean()}
