"""The ``uniform`` view: one number in [0, 1) per sample, for a random choice made on the model side.

Some objectives make a per-sample random choice in the training step rather than in the loader,
CapPa's parallel prediction being one (which captions are predicted from [MASK] tokens alone,
:func:`synclip.losses.caption.parallel_prediction_inputs`). Drawn there from the process RNG, the
choice would depend on how the global batch is split over ranks and would not repeat on resume.
This view draws it instead from the per-sample RNG the loader seeds, so it depends on the sample's
seed alone: the same for 1 and N processes, and the same after a resume. The objective compares it
with its probability. Objectives that read this view under the same name share the draw.
"""

from __future__ import annotations

from typing import Any

import torch

from synclip.data.views.base import register_view


def _uniform(sample: dict) -> float:
    return float(torch.rand(()))  # from torch's RNG, seeded per sample by the loader


@register_view("uniform")
def build_uniform_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the uniform view (no options); ``tokenizer`` and ``train`` are unused."""
    return _uniform
