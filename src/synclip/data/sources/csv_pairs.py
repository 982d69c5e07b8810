"""The ``csv`` source: image-text pairs listed in a CSV/TSV file (OpenCLIP's layout)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from synclip.data.csv_rows import read_table
from synclip.data.images import BadSample, load_rgb
from synclip.data.sources.base import register_source


class CsvImageText(Dataset):
    """Image-text pairs listed in a CSV/TSV file with a header row.

    ``sep=None`` picks a tab for ``.tsv`` files and a comma otherwise. Relative image paths are resolved
    against the CSV's folder. Samples: ``{"image", "caption", "key", **extras}`` where ``key`` is the
    image path as written in the file and ``extras`` are the string values of ``extra_keys`` columns.
    """

    def __init__(
        self,
        path: str | Path,
        img_key: str = "filepath",
        caption_key: str = "caption",
        sep: str | None = None,
        extra_keys: Sequence[str] = (),
        max_caption_chars: int = 1000,
    ):
        self.path = Path(path)
        self.img_key, self.caption_key = img_key, caption_key
        self.extra_keys = tuple(extra_keys)
        self.max_caption_chars = max_caption_chars
        self.sep = sep if sep is not None else ("\t" if self.path.suffix.lower() == ".tsv" else ",")
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
                raise ValueError(
                    f"{self.path}: no column {column!r} for images/captions; available columns: "
                    f"{self.columns}. Set {option}= to one of them (check sep= too: using {self.sep!r})."
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
        image = load_rgb(self._base / Path(filepath).expanduser(), key)
        return {"image": image, "caption": caption, "key": key, **dict(zip(self.extra_keys, extras))}


@register_source("csv", path=None, img_key="filepath", caption_key="caption", sep=None, batch_size=None)
def build_csv_source(name: str, opts: dict) -> CsvImageText:
    """Image-text pairs from ``opts["path"]``."""
    if not opts["path"]:
        raise ValueError(f"data.sources.{name}.path is required for a csv source")
    return CsvImageText(
        opts["path"], img_key=opts["img_key"], caption_key=opts["caption_key"], sep=opts["sep"]
    )
