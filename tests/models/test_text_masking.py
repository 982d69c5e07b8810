"""FLIP's text masking: the text tower drops the asked fraction of each caption's real tokens."""

import pytest
import torch

from run_helpers import small_run_overrides
from synclip.config import ConfigError, load_config
from synclip.data.tokenizer import get_tokenizer
from synclip.models import create_model
from synclip.models.text_masking import gather_kept, text_keep_index
from synclip.train.setup import build_pretrainer

CAPTIONS = ["grinning face with big eyes and a very wide smile", "red apple", "x", ""]


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_the_asked_fraction_of_real_tokens_is_dropped_and_padding_never_counts(ratio):
    tok = get_tokenizer(32)
    text = tok(CAPTIONS)  # (4, 32): <sot> words <eot> then padding
    index, kept = text_keep_index(text, ratio)
    ids, _ = gather_kept(text, torch.zeros(*text.shape, 1), index, kept)  # (4, L')
    for row, caption in enumerate(CAPTIONS):
        words = len(tok.encode(caption))  # the maskable tokens: between <sot> and <eot>
        keep = int(words * (1 - ratio))  # FLIP's int(L * (1 - mask_ratio))
        real = ids[row][ids[row] != 0].tolist()
        assert len(real) == keep + 2 and real[0] == tok.sot_token_id and real[-1] == tok.eot_token_id
        original = text[row][1 : 1 + words].tolist()
        inner = real[1:-1]
        positions = [original.index(t) for t in inner] if len(set(original)) == len(original) else None
        assert positions is None or positions == sorted(positions)  # kept tokens keep their order
        assert set(inner) <= set(original)
    assert index.shape[1] == int(kept.max())  # the sequence shrinks to the longest kept caption


def test_each_row_drops_different_tokens_and_the_draw_is_uniform():
    tok = get_tokenizer(32)
    text = tok([CAPTIONS[0]] * 4000)
    words = text[0][1 : 1 + len(tok.encode(CAPTIONS[0]))].tolist()  # 11 distinct tokens
    assert len(set(words)) == len(words) == 11
    index, kept = text_keep_index(text, 0.5)
    ids, _ = gather_kept(text, torch.zeros(*text.shape, 1), index, kept)
    counts = torch.stack([(ids == t).any(dim=1) for t in words]).float().mean(dim=1)  # keep rate per word
    assert torch.allclose(counts, torch.full_like(counts, 5 / 11), atol=0.03)  # int(11 * 0.5) of 11 each


def test_tower_masks_only_in_training_and_pools_at_eot():
    model = create_model("micro-vit-32")
    model.text_mask_ratio = 0.5
    tok = get_tokenizer(model.context_length)
    text = tok(CAPTIONS[:2])
    model.eval()
    full = model.text_outputs(text)
    assert full["tokens"].shape[1] == model.context_length
    model.train()
    torch.manual_seed(0)
    masked = model.text_outputs(text)
    words = len(tok.encode(CAPTIONS[0]))
    assert masked["tokens"].shape[1] == int(words * 0.5) + 2  # the longest kept caption
    assert not torch.allclose(masked["embed"][0], full["embed"][0])
    model.text_mask_ratio = 0.0
    assert torch.allclose(model.text_outputs(text)["embed"], full["embed"], atol=1e-6)  # no dropout in micro


def test_flip_recipe_option_and_its_errors(emoji_subset, tmp_path):
    flip = load_config("flip")
    assert flip.model.text_mask_ratio == 0.0  # FLIP's code default: off
    on = load_config("flip", small_run_overrides(emoji_subset, tmp_path, **{"model.text_mask_ratio": 0.5}))
    assert build_pretrainer(on).model.text_mask_ratio == 0.5
    with pytest.raises(ConfigError, match="text_mask_ratio"):
        load_config("flip", ["model.text_mask_ratio=1.0"])
    declip = load_config(
        "declip", small_run_overrides(emoji_subset, tmp_path, **{"model.text_mask_ratio": 0.5})
    )
    with pytest.raises(ConfigError, match="per-token features"):
        build_pretrainer(declip)  # its MLM reads the text tokens that masking would drop
