"""An image-text CSV seen as image-label data: each image labelled by one of its columns.

Used for ``emoji_labels``: Twemoji/OpenMoji images labelled with their Unicode category ("Smileys &
Emotion", 9 classes) or subcategory ("face-smiling", ~100 classes), for UniCL-style label supervision.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset

from synclip.data.images import BadSample
from synclip.data.sources.csv_pairs import CsvImageText


class CsvImageLabel(Dataset):
    """Samples ``{image, caption, label, class_name, key, **extras}`` with ``class_name = row[label_key]``.

    Classes are the distinct non-empty values of the column, sorted by name (label = index); a row with
    an empty value is a bad sample.
    """

    def __init__(self, pairs: CsvImageText, label_key: str):
        if label_key not in pairs.extra_keys:
            raise ValueError(
                f"{pairs.path}: label column {label_key!r} must be one of the extra columns "
                f"{list(pairs.extra_keys)}"
            )
        self.pairs, self.label_key = pairs, label_key
        column = 2 + pairs.extra_keys.index(label_key)  # rows are (filepath, caption, *extras)
        self._names = [row[column].strip() for row in pairs._rows]
        self.classes: list[str] = sorted(set(self._names) - {""})
        if not self.classes:
            raise ValueError(f"{pairs.path}: column {label_key!r} is empty in every row")
        self._ids = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        name = self._names[index]
        if not name:
            raise BadSample("no_label", self.pairs._rows[index][0], f"empty {self.label_key!r}")
        sample = self.pairs[index]
        return {**sample, "label": self._ids[name], "class_name": name}

    def metadata(self) -> Iterator[dict]:
        """Text fields of every sample without loading images (see :mod:`synclip.data.entities`)."""
        keys = ("caption", *self.pairs.extra_keys)
        for row, name in zip(self.pairs._rows, self._names):
            meta = dict(zip(keys, row[1:]))
            if name:
                meta.update(label=self._ids[name], class_name=name)
            yield meta
