import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from run_helpers import write_subset  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def emoji_corpus():
    """The real emoji corpus, built once into the synclip cache (reused across test runs)."""
    from synclip.data.emoji import build_emoji_corpus

    return build_emoji_corpus()


@pytest.fixture(scope="session")
def emoji_subset(emoji_corpus, tmp_path_factory):
    """A TSV of the first 256 Twemoji pairs with absolute paths: small enough for many short runs."""
    return write_subset(emoji_corpus, tmp_path_factory.mktemp("subset") / "emoji256.tsv", 256)
