"""The ``label`` view: the integer class label of a labelled sample."""

from __future__ import annotations

from typing import Any

from synclip.data.views.base import register_view, sample_field


def _label(sample: dict) -> int:
    return int(sample_field(sample, "label", "label"))


@register_view("label")
def build_label_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the label view (no options)."""
    return _label
