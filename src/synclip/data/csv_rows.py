"""Read a CSV/TSV table for a source: a header, then rows, with the file and line in every error.

A byte that is not UTF-8 spoils only its row: the row is kept with U+FFFD in place of the bad bytes
and its line number listed in ``undecodable``, so the source can skip and count it as a bad sample
rather than reject the whole file. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped. A
file the csv module cannot parse is a ValueError naming the file and line.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

_ESCAPED = range(0xDC80, 0xDD00)  # surrogateescape's stand-ins for undecodable bytes


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]  # one list of cells per non-empty data row, in file order
    lines: list[int]  # (rows,) 1-based line on which each row starts
    undecodable: dict[int, str] = field(default_factory=dict)  # row index -> "line N: byte 0x.."


def _clean(cell: str) -> tuple[str, int | None]:
    """``cell`` with escaped bytes replaced by U+FFFD, and the first such byte (or None)."""
    bad = next((ord(ch) - 0xDC00 for ch in cell if ord(ch) in _ESCAPED), None)
    if bad is None:
        return cell, None
    return "".join("\ufffd" if ord(ch) in _ESCAPED else ch for ch in cell), bad


def read_table(path: Path, sep: str) -> Table:
    """Parse ``path`` (header row first) with delimiter ``sep``."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long captions must reach the source's own check
    table = Table(columns=[], rows=[], lines=[])
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter=sep)
        try:
            header = next(reader, [])
            table.columns = [_clean(c)[0] for c in header]
            start = reader.line_num + 1
            for row in reader:
                if row:
                    cleaned = [_clean(c) for c in row]
                    bad = next((b for _, b in cleaned if b is not None), None)
                    if bad is not None:
                        table.undecodable[len(table.rows)] = f"line {start}: byte 0x{bad:02x} is not UTF-8"
                    table.rows.append([c for c, _ in cleaned])
                    table.lines.append(start)
                start = reader.line_num + 1
        except csv.Error as err:
            raise ValueError(
                f"{path} line {reader.line_num}: cannot parse the table ({err}); fix that line or "
                "check the separator (sep=)"
            ) from None
    return table
