"""The csv source and `synclip eval --csv` read open_clip's layout by default (issue 18, finding 5)."""

from __future__ import annotations

import pytest
from PIL import Image

from synclip.data import CsvImageText
from synclip.data.sources import build_source


@pytest.fixture
def folder(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    return tmp_path


def test_open_clip_layout_by_default_whatever_the_extension(folder):
    path = folder / "train.csv"  # open_clip's own CSVs are tab-separated, with a title column
    path.write_text("filepath\ttitle\na.png\ta red square, small\nb.png\ta blue one\n")
    for table in (CsvImageText(path), build_source("pairs", {"kind": "csv", "path": str(path)})):
        assert [table[i]["caption"] for i in range(2)] == ["a red square, small", "a blue one"]


@pytest.mark.parametrize("sep", ["comma", ",", "extension"])
def test_separator_styles(folder, sep):
    path = folder / "pairs.csv"
    path.write_text('filepath,caption\na.png,"red, small"\n')
    assert CsvImageText(path, caption_key="caption", sep=sep)[0]["caption"] == "red, small"


def test_the_error_names_the_fix_for_the_old_defaults(folder):
    path = folder / "pairs.csv"
    path.write_text("filepath,caption\na.png,red\n")
    with pytest.raises(ValueError, match="set sep=comma"):
        CsvImageText(path)
    tsv = folder / "pairs.tsv"
    tsv.write_text("filepath\tcaption\na.png\tred\n")
    with pytest.raises(ValueError, match="set caption_key=caption"):
        CsvImageText(tsv)


def test_eval_csv_defaults_and_overrides(folder):
    from synclip.eval.user_data import csv_pairs

    (folder / "mine.csv").write_text("filepath\ttitle\na.png\tred\nb.png\tblue\n")
    assert csv_pairs(folder / "mine.csv")[1] == ["blue", "red"]
    (folder / "theirs.csv").write_text("img,text\na.png,red\n")
    assert csv_pairs(folder / "theirs.csv", "img", "text", "comma")[1] == ["red"]


def test_cli_flags_reach_the_csv_task(monkeypatch, tmp_path):
    import synclip.evaluate
    from synclip.cli import main

    seen = {}

    def fake(checkpoint, **options):
        seen.update(options)
        return {"table": "", "path": tmp_path / "eval.json"}

    monkeypatch.setattr(synclip.evaluate, "evaluate_checkpoint", fake)
    assert main(["eval", "ckpt.pt", "--csv", "x.csv"]) == 0
    assert seen["csv_keys"] == ("filepath", "title", "tab")
    main(["eval", "ckpt.pt", "--csv", "x.csv", "--caption-key", "caption", "--csv-separator", "comma"])
    assert seen["csv_keys"] == ("filepath", "caption", "comma")


def test_warmup_longer_than_the_run_is_warned_about():
    from synclip.train.optim import warmup_warning

    note = warmup_warning(100, 14, 1e-3)
    assert "train.warmup_steps=100" in note and "14 optimizer steps" in note and "14% of train.lr" in note
    assert warmup_warning(2, 14, 1e-3) is None and warmup_warning(0, 14, 1e-3) is None
