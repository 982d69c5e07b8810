"""Shared pieces of the fault suite: small CSV runs and a one-call CLI runner."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from run_helpers import small_run_overrides  # noqa: E402


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (exit code, stdout, stderr)`` through ``synclip.cli.main``."""
    from synclip.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def run_args(emoji_subset, tmp_path):
    """``run_args(**overrides)``: overrides for a fast CSV run writing under ``tmp_path/runs``."""

    def make(tsv=None, **extra):
        return small_run_overrides(tsv or emoji_subset, tmp_path / "runs", **extra)

    return make
