"""A ``coca`` run on open_clip's CoCa towers (``coca-micro-vit-32``): its loss is open_clip's CoCa loss,
``synclip export`` loads into ``open_clip.create_model`` with ``strict=True``, open_clip's
``CoCa.generate`` gives the same greedy token ids, and the checkpoint round-trips through ``synclip.load``."""

import open_clip
import open_clip.coca_model as coca_model
import pytest
import torch
from open_clip.loss import CoCaLoss

from run_helpers import small_run_overrides
from synclip.api import load
from synclip.cli import main
from synclip.config import load_config
from synclip.models import create_model, open_clip_state_dict
from synclip.models.caption_generation import EOT_ID, SOT_ID
from synclip.models.coca_towers import CocaTowers
from synclip.objectives.base import Encoded
from synclip.objectives.caption import decode_captions
from synclip.recipe import Recipe, build_heads
from synclip.train.loop import train

ARCH = "coca-micro-vit-32"


@pytest.fixture
def open_clip_generation(monkeypatch):
    """open_clip's ``CoCa.generate`` imports ``transformers``' logits processors with its
    ``BeamSearchScorer`` in one ``try``; transformers >= 5 no longer has that class, which switches all
    of open_clip's generation off. Its greedy path (``top_k``) needs only the processors, so give
    open_clip those (the real classes) when the import failed."""
    transformers = pytest.importorskip("transformers")
    if not coca_model._has_transformers:
        for name in (
            "LogitsProcessorList",
            "TopKLogitsWarper",
            "RepetitionPenaltyLogitsProcessor",
            "MinLengthLogitsProcessor",
            "MaxLengthCriteria",
            "StoppingCriteriaList",
        ):
            monkeypatch.setattr(coca_model, name, getattr(transformers, name), raising=False)
        monkeypatch.setattr(coca_model, "_has_transformers", True)
        monkeypatch.setitem(coca_model.GENERATION_TYPES, "top_k", transformers.TopKLogitsWarper)


@pytest.fixture(scope="module")
def coca_run(emoji_subset, tmp_path_factory):
    settings = {"train.max_steps": 4, "train.name": "coca", "model.name": ARCH, "train.lr": 5e-3}
    overrides = small_run_overrides(emoji_subset, tmp_path_factory.mktemp("coca_oc"), **settings)
    return train(load_config("coca", overrides))


@pytest.fixture(scope="module")
def exported(coca_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "coca_open_clip.pt"
    assert main(["export", str(coca_run / "checkpoint.pt"), str(out)]) == 0
    return out


def _images(model, n=6):
    torch.manual_seed(1)
    return torch.rand(n, 3, model.image_size, model.image_size)  # (n, 3, H, W), varied enough to differ


def model_tokens(model, texts):
    from synclip.data.tokenizer import get_tokenizer

    return get_tokenizer(model.context_length)(texts)  # (N, L)


def test_the_coca_recipe_builds_open_clips_coca_towers_and_its_loss():
    """Recipe loss == open_clip's CoCaLoss(caption 2, contrastive 1) on CoCa.forward, same weights."""
    torch.manual_seed(0)
    model = create_model(ARCH)
    assert isinstance(model, CocaTowers)
    recipe = Recipe(model, {"clip": {}, "caption": {"weight": 2.0}}).eval()
    coca = open_clip.create_model(ARCH)
    assert isinstance(coca, coca_model.CoCa)
    coca.load_state_dict(open_clip_state_dict(model, recipe.export_state()), strict=True)
    coca.eval()

    images = _images(model, 8)
    tokens = model_tokens(model, ["grinning face", "red heart", "a cat", "thumbs up sign"] * 2)
    batch = {"pairs": {"image": images, "text": tokens}}
    ours = recipe(Encoded(model, batch), batch)
    out = coca(images, tokens)
    contrastive, caption = CoCaLoss(caption_loss_weight=2.0, clip_loss_weight=1.0)(
        out["image_features"], out["text_features"], out["logits"], out["labels"], out["logit_scale"]
    )
    assert torch.allclose(ours["clip_loss"], contrastive, atol=1e-5)
    assert torch.allclose(2.0 * ours["caption_loss"], caption, atol=1e-5)
    assert torch.allclose(ours["loss"], contrastive + caption, atol=1e-5)


def test_export_loads_strictly_into_open_clips_coca_and_embeds_the_same(coca_run, exported):
    ours = load(coca_run / "checkpoint.pt")
    state = torch.load(exported, weights_only=True)["state_dict"]
    assert any(k.startswith("text_decoder.") for k in state) and "logit_scale" in state
    coca = open_clip.create_model(ARCH, pretrained=str(exported))  # open_clip loads with strict=True
    coca.load_state_dict(state, strict=True)  # and explicitly: nothing missing, nothing left over
    coca.eval()
    images = _images(ours)
    tokens = ours.tokenizer(["grinning face", "red heart"])
    with torch.no_grad():
        assert torch.allclose(coca.encode_image(images), ours.encode_image(images, normalize=True), atol=1e-6)
        assert torch.allclose(coca.encode_text(tokens), ours.encode_text(tokens, normalize=True), atol=1e-6)
    assert torch.allclose(coca.logit_scale, ours.exported["logit_scale"])


def _same_greedy_ids(model, head, coca, images) -> torch.Tensor:
    """synclip's greedy ids == open_clip's ``CoCa.generate`` (top_k=1) for a few length settings."""
    for max_len, min_len in ((12, 1), (6, 3), (9, 0)):
        mine = head.generate_ids(model, images, method="greedy", max_len=max_len, min_len=min_len)
        theirs = coca.generate(
            images, generation_type="top_k", top_k=1, seq_len=max_len, min_seq_len=min_len + 1
        )
        assert torch.equal(mine, theirs), (max_len, min_len, mine, theirs)
        assert decode_captions(model, theirs) == head.generate(
            model, images, max_len=max_len, min_len=min_len
        )
    return mine


def test_open_clip_generates_the_same_greedy_captions_from_the_export(
    coca_run, exported, open_clip_generation
):
    ours = load(coca_run / "checkpoint.pt")
    coca = open_clip.create_model(ARCH, pretrained=str(exported)).eval()
    ids = _same_greedy_ids(ours, ours.heads["caption"], coca, _images(ours))
    assert (ids[:, 0] == SOT_ID).all() and (ids == EOT_ID).any(dim=1).all()  # every caption ended


def test_same_greedy_captions_for_varied_captions_of_every_length(open_clip_generation):
    """A random decoder whose end token often wins: captions differ per image and end at every length,
    so the comparison covers early ends, padding after them, and captions cut at max_len."""
    torch.manual_seed(0)
    model = create_model(ARCH).eval()
    recipe = Recipe(model, {"clip": {}, "caption": {"weight": 2.0}})
    decoder = recipe.objectives["caption"].decoder.text_decoder
    with torch.no_grad():  # the end token's logit: a little above a frequent token's
        decoder.text_projection[:, EOT_ID] = 1.05 * decoder.text_projection[:, 16583]
    head = build_heads(recipe.heads())["caption"]
    coca = open_clip.create_model(ARCH)
    coca.load_state_dict(open_clip_state_dict(model, recipe.export_state()), strict=True)
    coca.eval()
    torch.manual_seed(1)
    images = 2 * torch.randn(8, 3, model.image_size, model.image_size)  # (8, 3, H, W)
    ids = _same_greedy_ids(model, head, coca, images)
    assert len(set(map(tuple, ids.tolist()))) > 2  # the images get different captions
    ends = [row.index(EOT_ID) for row in ids.tolist()]
    assert min(ends) < ids.shape[1] - 1 == max(ends)  # some end early, some are cut at max_len


def test_the_coca_checkpoint_round_trips_through_synclip_load(coca_run, exported):
    from_checkpoint = load(coca_run / "checkpoint.pt")
    from_export = load(exported, model_name=ARCH)
    assert isinstance(from_checkpoint, CocaTowers) and isinstance(from_export, CocaTowers)
    images = _images(from_checkpoint)
    captions = from_checkpoint.generate(images, max_len=10)
    assert from_export.generate(images, max_len=10) == captions
    assert from_checkpoint.generate(images, method="beam", beams=3, max_len=8) == from_export.generate(
        images, method="beam", beams=3, max_len=8
    )
    decoder = from_checkpoint.heads["caption"].decoder.text_decoder.state_dict()
    state = torch.load(exported, weights_only=True)["state_dict"]
    for key, value in decoder.items():  # the exported decoder is the head's decoder
        assert torch.equal(state[f"text_decoder.{key}"], value)
    # training resumes from the checkpoint's model weights (text_decoder.* are not tower weights)
    model = create_model(ARCH, pretrained=str(coca_run / "checkpoint.pt"))
    assert torch.equal(model.encode_image(images), from_checkpoint.encode_image(images))


def test_options_that_open_clips_coca_cannot_hold_say_what_to_do():
    model = create_model(ARCH)
    for options, hint in (
        ({"text_input": "embedding"}, "text_input=tower"),
        ({"width": 32}, "multimodal_cfg sets width=64: leave it unset"),
        ({"n_queries": 4}, "pools 9 queries itself"),
    ):
        with pytest.raises(ValueError, match=hint):
            Recipe(model, {"caption": options})


def test_published_coca_weights_load_with_their_decoder(tmp_path, open_clip_generation):
    """open_clip CoCa weights (open_clip:ARCH:FILE, as a published tag resolves) caption in synclip."""
    torch.manual_seed(0)
    coca = open_clip.create_model(ARCH).eval()
    with torch.no_grad():
        coca.text_decoder.text_projection.normal_(std=0.1)  # open_clip leaves it uninitialised
    path = tmp_path / "coca.pt"
    torch.save(coca.state_dict(), path)
    model = load(f"open_clip:{ARCH}:{path}")
    assert isinstance(model, CocaTowers) and "caption" in model.heads
    torch.manual_seed(1)
    images = 2 * torch.randn(4, 3, model.image_size, model.image_size)  # (4, 3, H, W)
    _same_greedy_ids(model, model.heads["caption"], coca, images)
