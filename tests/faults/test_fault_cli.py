"""The command line's error boundary: expected failures are one line and exit 2, bugs keep their traceback."""

import pytest

from synclip import cli as cli_mod


def _one_error_line(err, command="train"):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"synclip {command}: error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train:\n  lr: [1\n", "is not valid YAML"),
        ("- clip\n- simclr\n", "must be a mapping of sections"),
    ],
)
def test_a_broken_recipe_file_is_one_line_naming_the_file(cli, tmp_path, text, expected):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(text)
    code, _, err = cli("train", recipe)
    assert code == 2
    line = _one_error_line(err)
    assert str(recipe) in line and expected in line and "<unicode string>" not in line


@pytest.mark.parametrize(
    "override", ["train.checkpoint_every=0", "train.log_every=0", "train.max_steps=-5", "train.lr=[1"]
)
def test_a_bad_value_stops_before_a_run_folder_is_made(cli, tmp_path, run_args, override):
    code, _, err = cli("train", "clip", *run_args(), override)
    assert code == 2
    assert override.split("=")[0] in _one_error_line(err)
    assert not (tmp_path / "runs").exists()


def test_unexpected_errors_keep_their_traceback(cli, monkeypatch):
    def broken(args):
        return 1 // 0

    monkeypatch.setitem(cli_mod.COMMANDS, "recipes", broken)
    with pytest.raises(ZeroDivisionError):
        cli("recipes")


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_debug_shows_the_traceback_of_expected_errors(cli, monkeypatch, tmp_path, how):
    from synclip.config import ConfigError

    recipe = tmp_path / "list.yaml"
    recipe.write_text("- a\n")
    argv = ["train", recipe]
    if how == "flag-before":
        argv = ["--debug", *argv]
    elif how == "flag-after":
        argv = [*argv, "--debug"]
    else:
        monkeypatch.setenv("SYNCLIP_DEBUG", "1")
    with pytest.raises(ConfigError, match="must be a mapping"):
        cli(*argv)


def test_a_missing_optional_module_is_one_line_with_the_install_hint(cli, monkeypatch):
    def needs_sklearn(args):
        raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")

    monkeypatch.setitem(cli_mod.COMMANDS, "models", needs_sklearn)
    code, _, err = cli("models")
    assert code == 2 and "pip install" in _one_error_line(err, "models")


def test_a_library_value_error_is_not_mistaken_for_a_user_error(cli, monkeypatch):
    import json

    def parse(args):
        return json.loads("{")  # json.JSONDecodeError, a ValueError raised outside synclip

    monkeypatch.setitem(cli_mod.COMMANDS, "models", parse)
    with pytest.raises(ValueError):
        cli("models")
