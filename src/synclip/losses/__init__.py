"""Losses are plain maths: tensors in, scalar out. Collectives only through synclip.distributed.

Each file is named after the method whose loss it holds (``clip``, ``siglip``, ``caption`` (CoCa,
CapPa), ``simclr``, ``simsiam``, ``byol`` (A-CLIP), ``nclip``, ``multiview_clip`` (DeCLIP's MVS), ``unicl``, ``mae``,
``mim``); ``masked_ce`` is the masked-token cross-entropy that MLM and the entity classifier (MOFI) share.
"""

from synclip.losses.byol import byol_loss
from synclip.losses.caption import caption_loss, parallel_prediction_inputs, teacher_forcing
from synclip.losses.clip import clip_loss, contrastive_logits, image_to_text_loss
from synclip.losses.mae import masked_patch_mse, normalise_patches, patchify
from synclip.losses.masked_ce import masked_token_ce
from synclip.losses.mim import mim_feature_loss
from synclip.losses.multiview_clip import multiview_clip_loss
from synclip.losses.nclip import entropy, nclip_loss
from synclip.losses.siglip import siglip_loss, sigmoid_logits
from synclip.losses.simclr import ntxent_loss
from synclip.losses.simsiam import simsiam_loss
from synclip.losses.unicl import unicl_loss

__all__ = [
    "byol_loss",
    "caption_loss",
    "clip_loss",
    "contrastive_logits",
    "entropy",
    "image_to_text_loss",
    "masked_patch_mse",
    "masked_token_ce",
    "mim_feature_loss",
    "multiview_clip_loss",
    "nclip_loss",
    "normalise_patches",
    "ntxent_loss",
    "parallel_prediction_inputs",
    "patchify",
    "sigmoid_logits",
    "siglip_loss",
    "simsiam_loss",
    "teacher_forcing",
    "unicl_loss",
]
