"""The student's masked forward: BEiT/EVA mask tokens and MAE's visible-only encoding."""

import pytest
import torch

from synclip.models import create_model
from synclip.models.masked_embed import masked_embeds


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("micro-vit-32").eval()  # 32 px, patch 8: a 4 x 4 grid


def _paint(images, patch, value=3.0):
    """A copy of images (B, 3, 32, 32) with patch number ``patch`` (row-major, 4 x 4 grid) overwritten."""
    out = images.clone()
    r, c = divmod(patch, 4)
    out[:, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = value
    return out


def test_without_mask_or_keep_nothing_changes(model):
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model.image_outputs(images)
        unmasked = model.image_outputs(
            images, mask=torch.zeros(2, 16, dtype=torch.bool), mask_token=torch.zeros(64)
        )
        everything = model.image_outputs(images, keep=torch.arange(16).expand(2, 16))
    assert plain["tokens"].shape == (2, 16, 64)
    for out in (unmasked, everything):
        assert torch.allclose(out["tokens"], plain["tokens"], atol=1e-5)
        assert torch.allclose(out["embed"], plain["embed"], atol=1e-5)


def test_masked_patches_are_replaced_by_the_token_before_the_positions(model):
    images, token = torch.randn(2, 3, 32, 32), torch.randn(64)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, [1, 6]] = True
    with torch.no_grad():
        out = model.image_outputs(images, mask=mask, mask_token=token)["tokens"]  # (2, 16, 64)
        hidden = model.image_outputs(_paint(images, 6), mask=mask, mask_token=token)["tokens"]
        shown = model.image_outputs(_paint(images, 5), mask=mask, mask_token=token)["tokens"]
    assert out.shape == (2, 16, 64)
    assert torch.equal(out, hidden)  # a masked patch's pixels are never seen
    assert not torch.allclose(out, shown)
    with torch.no_grad():
        embeds = masked_embeds(model.visual, images, mask, token)  # (2, 1 + 16, 64)
    # patches 1 and 6 carry the same token, but the positional embedding is added after it
    assert not torch.allclose(embeds[:, 2], embeds[:, 7])


def test_keep_encodes_only_the_kept_patches(model):
    images = torch.randn(2, 3, 32, 32)
    keep = torch.tensor([[0, 3, 9, 12], [1, 2, 4, 15]])
    with torch.no_grad():
        out = model.image_outputs(images, keep=keep)["tokens"]
        dropped = model.image_outputs(_paint(images, 5), keep=keep)["tokens"]  # 5 is kept by neither row
        kept = model.image_outputs(_paint(images, 9), keep=keep)["tokens"]  # row 0 keeps 9
    assert out.shape == (2, 4, 64)
    assert torch.equal(out, dropped)
    assert not torch.allclose(out[0], kept[0]) and torch.equal(out[1], kept[1])


def test_bad_mask_arguments_are_clear_errors(model):
    images = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    with pytest.raises(ValueError, match="together"):
        model.image_outputs(images, mask=mask)
    with pytest.raises(ValueError, match="mask must be"):
        model.image_outputs(images, mask=torch.zeros(2, 9, dtype=torch.bool), mask_token=torch.zeros(64))
    with pytest.raises(ValueError, match="patch_dropout"):
        model.image_outputs(images, 0.5, mask=mask, mask_token=torch.zeros(64))
