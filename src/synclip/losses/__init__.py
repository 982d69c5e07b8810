"""Losses are plain maths: tensors in, scalar out. Collectives only through synclip.distributed."""

from synclip.losses.info_nce import clip_loss, contrastive_logits

__all__ = ["clip_loss", "contrastive_logits"]
