"""Where synclip keeps built data (the emoji corpus and friends)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the data cache folder, creating it on demand.

    ``$SYNCLIP_DATA`` wins when set; otherwise ``~/.cache/synclip``.
    """
    env = os.environ.get("SYNCLIP_DATA")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "synclip"
    path.mkdir(parents=True, exist_ok=True)
    return path
