"""synclip: language-image pre-training with CLIP and the learning signals that make it better."""

from synclip.version import __version__

__all__ = ["__version__", "create_model", "list_models", "list_recipes", "load", "load_config"]

_LAZY = {
    "create_model": "synclip.models",
    "list_models": "synclip.models",
    "list_recipes": "synclip.config",
    "load_config": "synclip.config",
    "load": "synclip.api",
}


def __getattr__(name: str):
    """Import the public API on first use, so `import synclip` stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synclip' has no attribute {name!r}")
