"""The command line takes options where people type them (issue 18, finding 4)."""

import json

import pytest

from synclip.cli import main


def test_resume_and_print_config_between_recipe_and_overrides(capsys):
    assert main(["train", "clip", "--resume", "--print-config", "train.name=x", "train.epochs=3"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["name"] == "x" and cfg["train"]["epochs"] == 3 and cfg["train"]["resume"] == "auto"


def test_overrides_on_both_sides_of_an_option_keep_their_order(capsys):
    assert main(["train", "clip", "train.epochs=3", "--print-config", "train.epochs=4"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["epochs"] == 4


def test_compare_rows_after_an_option(monkeypatch, tmp_path):
    import synclip.compare

    seen = {}

    def fake(entries, out, seeds, *rest):
        seen.update(labels=[e.label for e in entries], seeds=seeds)
        (tmp_path / "r.md").write_text("table")
        return {"paths": {"md": tmp_path / "r.md"}}

    monkeypatch.setattr(synclip.compare, "compare", fake)
    assert main(["compare", "clip", "--seeds", "2", "slip"]) == 0
    assert seen == {"labels": ["clip", "slip"], "seeds": 2}


def test_an_unknown_option_is_still_refused(capsys):
    with pytest.raises(SystemExit) as err:
        main(["train", "clip", "--bogus", "train.name=x"])
    assert err.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
