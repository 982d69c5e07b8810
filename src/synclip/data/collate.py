"""Batch ViewDataset items, dropping and counting the bad ones."""

from __future__ import annotations

from typing import Any

import torch


def _stack(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)  # (B, ...)
    if isinstance(first, dict):  # e.g. a batched image view's parameters: each field stacked
        return {key: _stack([value[key] for value in values]) for key in first}
    if isinstance(first, bool):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, int):
        return torch.tensor(values, dtype=torch.long)  # (B,)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)  # (B,)
    return list(values)  # strings and anything else stay a list


def collate(items: list[dict]) -> dict[str, Any]:
    """Stack good items key by key; report bad ones.

    Returns ``{view: batched value, "key": [ids], "size": B, "n_items": len(items), "n_bad": int,
    "bad": [(key, reason)]}``. When every item is bad only ``size`` (0), ``n_items``, ``n_bad`` and
    ``bad`` are present.
    """
    good = [item for item in items if "__bad__" not in item]
    bad = [(item.get("key"), item["__bad__"]) for item in items if "__bad__" in item]
    batch: dict[str, Any] = {}
    if good:
        for name in good[0]:
            batch[name] = _stack([item[name] for item in good])
    batch.update(size=len(good), n_items=len(items), n_bad=len(bad), bad=bad)
    return batch
