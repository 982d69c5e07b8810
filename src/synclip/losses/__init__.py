"""Losses are plain maths: tensors in, scalar out. Collectives only through synclip.distributed."""

from synclip.losses.caption import caption_loss, parallel_prediction_inputs, teacher_forcing
from synclip.losses.cosine import simsiam_loss
from synclip.losses.info_nce import clip_loss, contrastive_logits
from synclip.losses.masked_ce import masked_token_ce
from synclip.losses.multiview import multiview_clip_loss
from synclip.losses.noncontrastive import entropy, nclip_loss
from synclip.losses.ntxent import ntxent_loss
from synclip.losses.siglip import siglip_loss, sigmoid_logits
from synclip.losses.unicl import unicl_loss

__all__ = [
    "caption_loss",
    "clip_loss",
    "contrastive_logits",
    "entropy",
    "masked_token_ce",
    "multiview_clip_loss",
    "nclip_loss",
    "ntxent_loss",
    "parallel_prediction_inputs",
    "sigmoid_logits",
    "siglip_loss",
    "simsiam_loss",
    "teacher_forcing",
    "unicl_loss",
]
