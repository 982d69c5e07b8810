"""The self-supervised views: image_ssl crops, text_eda (WordNet EDA) and text_mlm masking."""

import random

import pytest
import torch
from PIL import Image

from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views
from synclip.data.views.text_eda import (
    eda,
    parse_wordnet_line,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
    synonym_table,
)
from synclip.data.views.text_mlm import DEFAULT_MASK_ID, mask_tokens
from synclip.losses.masked_ce import IGNORE

CAPTION = "a smiling cat face with heart shaped eyes and a happy grin"


@pytest.fixture(scope="module")
def sample():
    img = Image.effect_mandelbrot((64, 48), (-2, -1.5, 1, 1.5), 50).convert("RGB")
    return {"image": img, "caption": CAPTION, "key": "x"}


def _seeded(views, sample, seed):
    random.seed(seed)
    torch.manual_seed(seed)
    return views(sample)


def test_image_ssl_gives_n_distinct_seeded_crops(sample):
    views = make_views({"image_ssl": {"num": 3, "size": 32}}, None, train=True)
    a, b = _seeded(views, sample, 1)["image_ssl"], _seeded(views, sample, 1)["image_ssl"]
    assert a.shape == (3, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)  # seeded per sample -> reproducible
    assert not torch.equal(a[0], a[1])  # crops differ
    assert not torch.equal(a, _seeded(views, sample, 2)["image_ssl"])
    evaluation = make_views({"image_ssl": {"num": 2, "size": 32}}, None, train=False)(sample)["image_ssl"]
    assert torch.equal(evaluation[0], evaluation[1])  # no augmentation when not training


def test_image_ssl_rejects_bad_options():
    with pytest.raises(ValueError, match="scale"):
        make_views({"image_ssl": {"scale": [0.0, 1.0]}}, None, train=True)
    with pytest.raises(ValueError, match="num"):
        make_views({"image_ssl": {"num": 0}}, None, train=True)


def test_wordnet_line_parsing():
    line = "01123148 00 s 02 good(a) 0 well_made 0 003 ..."
    assert parse_wordnet_line(line) == ["good", "well made"]
    table = synonym_table()
    assert "glad" in table["happy"] and "happy" in table["glad"]
    assert "grinning" in table["grin"] or "smile" in table["grin"]


def test_eda_operations():
    words = CAPTION.split()
    table = synonym_table()
    random.seed(0)
    replaced = synonym_replacement(words, 2, table)
    assert len(replaced) == len(words) and sum(a != b for a, b in zip(words, replaced, strict=True)) == 2
    assert len(random_insertion(words, 2, table)) == len(words) + 2
    swapped = random_swap(words, 1)
    assert sorted(swapped) == sorted(words) and swapped != words
    assert 1 <= len(random_deletion(words, 0.5)) < len(words)
    assert random_deletion(["one"], 0.99) == ["one"]
    random.seed(3)
    first = eda(CAPTION)
    random.seed(3)
    assert eda(CAPTION) == first  # seeded through python's random
    assert eda("") == ""


def test_text_eda_view_tokenises_and_is_seeded(sample):
    tok = get_tokenizer(32)
    views = make_views({"text_eda": {}, "text": {}}, tok, train=True)
    outs = [_seeded(views, sample, s)["text_eda"] for s in range(20)]
    assert outs[0].shape == (32,) and outs[0].dtype == torch.long
    assert any(not torch.equal(o, outs[0]) for o in outs)
    assert torch.equal(_seeded(views, sample, 5)["text_eda"], outs[5])
    assert any(not torch.equal(o, tok([CAPTION])[0]) for o in outs)
    with pytest.raises(ValueError, match="ops"):
        make_views({"text_eda": {"ops": ["xx"]}}, tok, train=True)


def test_mlm_masking_statistics():
    torch.manual_seed(0)
    ids = torch.randint(1, 40000, (200_000,))
    out = mask_tokens(ids, [0, 49406, 49407], 49408, DEFAULT_MASK_ID)
    masked, labels = out
    selected = labels != IGNORE
    assert abs(selected.float().mean().item() - 0.15) < 0.005
    assert torch.equal(labels[selected], ids[selected])
    sel_masked = masked[selected]
    assert abs((sel_masked == DEFAULT_MASK_ID).float().mean().item() - 0.8) < 0.01
    kept = (sel_masked == ids[selected]).float().mean().item()
    assert 0.09 < kept < 0.115  # 10% kept (+ random draws that hit the same id, ~never)
    assert torch.equal(masked[~selected], ids[~selected])


def test_text_mlm_view_never_masks_special_tokens(sample):
    tok = get_tokenizer(32)
    view = make_views({"text_mlm": {}}, tok, train=True)
    for seed in range(20):
        out = _seeded(view, sample, seed)["text_mlm"]
        assert out.shape == (2, 32)
        ids, labels = tok([CAPTION])[0], out[1]
        special = (ids == 0) | (ids == tok.sot_token_id) | (ids == tok.eot_token_id)
        assert (labels[special] == IGNORE).all() and (labels != IGNORE).any()
        assert torch.equal(out[0][special], ids[special])
