"""The class token's attention read from an open_clip ViT during a forward."""

import pytest
import torch

from synclip.models.factory import create_model
from synclip.models.masked_embed import masked_embeds
from synclip.models.vit_attention import class_token_attention


def _by_hand(visual, image):
    """Each block's weights asked for explicitly, block by block (no hooks)."""
    x = masked_embeds(visual, image)
    rows = []
    for block in visual.transformer.resblocks:
        h = block.ln_1(x)
        _, weights = block.attn(h, h, h, need_weights=True, average_attn_weights=False)  # (B, heads, L, L)
        rows.append(weights[:, :, 0, 1:])
        x = block(x)
    return torch.stack(rows).mean(0).mean(1)  # (B, P)


def test_attention_matches_a_block_by_block_computation_and_the_tower_output():
    torch.manual_seed(0)
    model = create_model("micro-vit-32").eval()
    image = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out, attention = class_token_attention(model.visual, image)
        expected = _by_hand(model.visual, image)
        pooled = model.image_outputs(image)["pooled"]
    assert attention.shape == (3, 16)  # 4 x 4 patches
    assert torch.allclose(attention, expected, atol=1e-6)
    assert (attention > 0).all() and (attention.sum(-1) < 1).all()  # the class column is left out
    assert torch.allclose(out["pooled"], pooled, atol=1e-5)
    for block in model.visual.transformer.resblocks:  # the hooks are gone afterwards
        assert not block.attn._forward_pre_hooks and not block.attn._forward_hooks


def test_average_pooled_towers_are_refused():
    model = create_model("micro-vit-32-avg")
    with pytest.raises(ValueError, match="class token"):
        class_token_attention(model.visual, torch.randn(1, 3, 32, 32))
