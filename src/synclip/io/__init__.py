"""File I/O below every other layer: atomic writes and checkpoint reads (no model or training code)."""

from synclip.io.atomic import atomic_write, atomic_write_text
from synclip.io.checkpoint import (
    FORMAT,
    CheckpointError,
    read_checkpoint,
    read_synclip_checkpoint,
    save_atomic,
)

__all__ = [
    "FORMAT",
    "CheckpointError",
    "atomic_write",
    "atomic_write_text",
    "read_checkpoint",
    "read_synclip_checkpoint",
    "save_atomic",
]
