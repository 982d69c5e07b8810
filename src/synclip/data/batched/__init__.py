"""Batched image augmentation on the training device (``data.augment=batched``).

Workers decode each image once (:mod:`.canvas`) and draw each view's per-sample parameters from the
sample's seed (:mod:`.params`); the device applies them to whole batches (:mod:`.ops`, :mod:`.views`).
"""

from synclip.data.batched.views import BATCHED_KINDS, BatchedAugment, DecodeOnce, batched_views

__all__ = ["BATCHED_KINDS", "BatchedAugment", "DecodeOnce", "batched_views"]
