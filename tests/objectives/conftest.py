"""A real emoji batch through any set of views, and small option sets that keep objectives fast."""

import random

import pytest
import torch

from small_options import SMALL, shrink  # noqa: F401  (re-exported for the tests here)
from synclip.data.collate import collate
from synclip.data.sources import CsvImageText
from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views
from synclip.models import create_model
from synclip.train.data import resolve_views


@pytest.fixture(scope="session")
def emoji_source(emoji_subset):
    return CsvImageText(emoji_subset, caption_key="caption")


@pytest.fixture
def make_batch(emoji_source):
    """``make_batch(model, view_names, view_cfgs, n)`` -> {"pairs": batch} from real emoji pairs."""

    def build(model, names, cfgs=None, n=16, seed=0, source=None):
        tok = get_tokenizer(model.context_length)
        cfgs = resolve_views(list(names), cfgs or {}, model.image_size, model.patch_size)
        views = make_views(cfgs, tok, train=True)
        items = []
        for i in range(n):
            random.seed(seed * 1000 + i)
            torch.manual_seed(seed * 1000 + i)
            items.append({**views((source or emoji_source)[i]), "key": i})  # e.g. Fashion-MNIST
        return {"pairs": collate(items)}

    return build


@pytest.fixture
def micro_model():
    torch.manual_seed(0)
    return create_model("micro-vit-32")
