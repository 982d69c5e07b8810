"""CSV tables: a bad byte spoils one row (skipped and counted with its line), not the whole file."""

from synclip.data.sources import BadSample, CsvImageText


def test_a_non_utf8_byte_skips_only_its_row_naming_file_and_line(emoji_subset, tmp_path):
    lines = emoji_subset.read_bytes().splitlines()
    cells = lines[3].split(b"\t")
    cells[1] += " caf\xe9".encode("latin-1")  # the fourth line (third data row) gets a Latin-1 byte
    lines[3] = b"\t".join(cells)
    path = tmp_path / "mixed.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    table = CsvImageText(path, caption_key="caption")
    assert len(table) == 256
    try:
        table[2]
    except BadSample as bad:
        assert bad.reason == "not_utf8" and f"{path} line 4: byte 0xe9 is not UTF-8" in str(bad)
    else:
        raise AssertionError("a row with a non-UTF-8 byte was used")
    assert table[3]["caption"] and table[1]["image"].mode == "RGB"


def test_a_byte_order_mark_does_not_hide_the_first_column(emoji_subset, tmp_path):
    path = tmp_path / "excel.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + emoji_subset.read_bytes())
    assert CsvImageText(path, caption_key="caption")[0]["image"].mode == "RGB"
