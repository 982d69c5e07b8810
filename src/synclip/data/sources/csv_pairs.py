"""The ``csv`` source: image-text pairs listed in a CSV/TSV file, with OpenCLIP's defaults.

Like ``open_clip_train`` (``--csv-img-key filepath --csv-caption-key title --csv-separator '\t'``),
the image column is ``filepath``, the caption column ``title`` and the separator a tab, whatever the
file is called; ``sep`` also takes ``tab``, ``comma`` or ``extension`` (a tab for ``.tsv`` files, a
comma otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from synclip.data.csv_rows import read_table
from synclip.data.images import BadSample, load_rgb
from synclip.data.sources.base import register_source

IMG_KEY, CAPTION_KEY, SEPARATOR = "filepath", "title", "\t"  # open_clip_train's defaults
SEPARATOR_STYLES = {"tab": "\t", "comma": ",", "extension": None}


def resolve_separator(sep: str | None, path: Path) -> str:
    """A separator character from ``sep``: a character, ``tab``, ``comma`` or ``extension`` (a tab for
    ``.tsv``, a comma otherwise); None is open_clip's tab."""
    if sep is None:
        return SEPARATOR
    if sep in SEPARATOR_STYLES:
        return SEPARATOR_STYLES[sep] or ("\t" if path.suffix.lower() == ".tsv" else ",")
    if sep == "\\t":  # typed on a command line
        return "\t"
    if len(sep) != 1:
        raise ValueError(
            f"csv separator must be one character or one of {sorted(SEPARATOR_STYLES)}, got {sep!r}"
        )
    return sep


class CsvImageText(Dataset):
    """Image-text pairs listed in a CSV/TSV file with a header row.

    Defaults follow open_clip: columns ``filepath`` and ``title``, tab-separated (``sep``: see
    :func:`resolve_separator`). Relative image paths are resolved
    against the CSV's folder. Samples: ``{"image", "caption", "key", **extras}`` where ``key`` is the
    image path as written in the file and ``extras`` are the string values of ``extra_keys`` columns.
    """

    def __init__(
        self,
        path: str | Path,
        img_key: str = IMG_KEY,
        caption_key: str = CAPTION_KEY,
        sep: str | None = None,
        extra_keys: Sequence[str] = (),
        max_caption_chars: int = 1000,
    ):
        self.path = Path(path)
        self.img_key, self.caption_key = img_key, caption_key
        self.extra_keys = tuple(extra_keys)
        self.max_caption_chars = max_caption_chars
        self.decode_size: int | None = None  # JPEG draft decoding (the batched augmentation path sets it)
        self.sep = resolve_separator(sep, self.path)
        table = read_table(self.path, self.sep)
        self.columns: list[str] = table.columns
        self._check_columns()
        wanted = [self.columns.index(c) for c in (img_key, caption_key, *self.extra_keys)]
        self._rows = [tuple(row[i] if i < len(row) else "" for i in wanted) for row in table.rows]
        self.undecodable = table.undecodable  # row index -> where its non-UTF-8 byte is
        self._base = self.path.parent

    def _check_columns(self) -> None:
        for option, column in (("img_key", self.img_key), ("caption_key", self.caption_key)):
            if column not in self.columns:
                hint = ""
                other = "," if self.sep != "," else "\t"
                if len(self.columns) == 1 and other in self.columns[0]:
                    hint = f" The header looks {'comma' if other == ',' else 'tab'}-separated: set sep={'comma' if other == ',' else 'tab'}."
                elif option == "caption_key" and "caption" in self.columns:
                    hint = " (open_clip's default caption column is 'title'; this file has 'caption': set caption_key=caption)"
                raise ValueError(
                    f"{self.path}: no column {column!r} for images/captions; available columns: "
                    f"{self.columns}. Set {option}= to one of them (check sep= too: using {self.sep!r}).{hint}"
                )
        missing = [c for c in self.extra_keys if c not in self.columns]
        if missing:
            raise ValueError(f"{self.path}: extra_keys {missing} not among the columns {self.columns}")

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict:
        filepath, caption, *extras = self._rows[index]
        key = filepath
        if index in self.undecodable:
            raise BadSample("not_utf8", key, f"{self.path} {self.undecodable[index]}")
        caption = caption.strip()
        if not caption:
            raise BadSample("empty_caption", key)
        if len(caption) > self.max_caption_chars:
            raise BadSample("caption_too_long", key, f"{len(caption)} > {self.max_caption_chars} chars")
        image = load_rgb(self._base / Path(filepath).expanduser(), key, self.decode_size)
        return {"image": image, "caption": caption, "key": key, **dict(zip(self.extra_keys, extras))}


@register_source("csv", path=None, img_key=IMG_KEY, caption_key=CAPTION_KEY, sep=SEPARATOR, batch_size=None)
def build_csv_source(name: str, opts: dict) -> CsvImageText:
    """Image-text pairs from ``opts["path"]``."""
    if not opts["path"]:
        raise ValueError(f"data.sources.{name}.path is required for a csv source")
    return CsvImageText(
        opts["path"], img_key=opts["img_key"], caption_key=opts["caption_key"], sep=opts["sep"]
    )
