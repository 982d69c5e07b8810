"""The registries: objectives, views, sources and eval tasks, each filled by explicit imports (docs/design.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry:
    """A named mapping of factories with a readable error on a missing key."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def add(obj: Any) -> Any:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> Any:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


OBJECTIVES = Registry("objective")
VIEWS = Registry("view")
EVAL_TASKS = Registry("eval task")
SOURCES = Registry("source")
