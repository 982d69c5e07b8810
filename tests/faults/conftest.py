"""Shared pieces of the fault suite: small CSV runs and a one-call CLI runner."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parents[1]))
from run_helpers import small_run_overrides  # noqa: E402

# Few examples and no deadline in CI (2 cores, a 30-minute budget for every test); run
# HYPOTHESIS_PROFILE=thorough to search harder after touching a reader of files or config.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("synclip", max_examples=40, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "synclip"))


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


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A synclip checkpoint of a freshly initialised micro-vit-32 in its own run folder."""
    from synclip.config import load_config
    from synclip.io.checkpoint import FORMAT, save_atomic
    from synclip.models import create_model, open_clip_state_dict

    state = {
        "format": FORMAT,
        "model_name": "micro-vit-32",
        "model": open_clip_state_dict(create_model("micro-vit-32")),
        "config": load_config("clip", ["model.name=micro-vit-32"]).to_dict(),
        "step": 0,
    }
    return save_atomic(state, tmp_path_factory.mktemp("run") / "checkpoint.pt")
