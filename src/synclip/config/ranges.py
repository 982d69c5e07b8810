"""Range checks of numeric config values, run when a config is built (before any model or data).

Each check names the dotted key, the allowed range and the value given, so that a mistake such as
``train.checkpoint_every=0`` or ``train.max_steps=-5`` fails at once instead of after the first step
(a division by zero) or with an untrained "finished" checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

# (section, key, lowest allowed, whether the lowest is allowed, highest allowed or None, may be null)
_AT_LEAST_1 = ("batch_size", "accum_steps", "checkpoint_every", "log_every")
_RULES: list[tuple[str, str, float, bool, float | None, bool]] = [
    *(("train", key, 1, True, None, False) for key in _AT_LEAST_1),
    ("train", "epochs", 0, False, None, False),  # a fraction of an epoch is allowed (FLIP's short tuning)
    ("train", "max_steps", 1, True, None, True),
    ("train", "save_every", 1, True, None, True),
    ("train", "keep_last", 1, True, None, True),
    ("train", "warmup_steps", 0, True, None, False),
    ("train", "lr", 0, True, None, False),
    ("train", "weight_decay", 0, True, None, False),
    ("train", "beta1", 0, True, 1, False),
    ("train", "beta2", 0, True, 1, False),
    ("train", "eps", 0, False, None, False),
    ("train", "grad_clip_norm", 0, True, None, True),
    ("data", "workers", 0, True, None, False),
    ("data", "decode_size", 1, True, None, True),
    ("data", "max_bad_fraction", 0, True, 1, False),
    ("eval", "batch_size", 1, True, None, False),
    ("eval", "limit", 1, True, None, True),
    ("eval", "every_steps", 1, True, None, True),
    ("eval", "every_epochs", 1, True, None, True),
    ("model", "image_size", 1, True, None, True),
    ("model", "context_length", 1, True, None, True),
    ("model", "patch_dropout", 0, True, 1, False),
    ("model", "text_mask_ratio", 0, True, 1, False),
    ("model", "unlocked_groups", 0, True, None, False),
]
_OPEN_ABOVE = {
    ("train", "beta1"),
    ("train", "beta2"),
    ("model", "patch_dropout"),
    ("model", "text_mask_ratio"),
}


def range_problems(cfg: Any) -> list[str]:
    """Every out-of-range value of ``cfg`` (a RunConfig), one sentence each; empty when all are fine."""
    problems = []
    for section, key, low, low_ok, high, nullable in _RULES:
        value = getattr(getattr(cfg, section), key)
        if value is None and nullable:
            continue
        if not _within(value, low, low_ok, high, (section, key) in _OPEN_ABOVE):
            problems.append(
                f"{section}.{key} must be {_describe(low, low_ok, high, nullable, section, key)}, got {value!r}"
            )
    return problems


def _within(value: float, low: float, low_ok: bool, high: float | None, open_above: bool) -> bool:
    if not math.isfinite(value):
        return False
    if value < low or (value == low and not low_ok):
        return False
    return high is None or value < high or (value == high and not open_above)


def _describe(low, low_ok, high, nullable, section, key) -> str:
    if high is not None:
        upper = "below" if (section, key) in _OPEN_ABOVE else "at most"
        text = f"at least {low} and {upper} {high}"
    elif low_ok:
        text = f"at least {low}"
    else:
        text = f"greater than {low}"
    return text + (" (or null)" if nullable else "")
