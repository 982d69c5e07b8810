"""Encoded: one tower call per group of same-shape views, identical outputs, patch dropout."""

import torch

from synclip.models.two_tower import drop_patches
from synclip.objectives import Encoded
from synclip.recipe import Pretrainer, Recipe


class CountingModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = []

    def image_outputs(self, x, patch_dropout=0.0):
        self.calls.append(("image", x.shape[0], patch_dropout))
        return self.model.image_outputs(x, patch_dropout)

    def text_outputs(self, x):
        self.calls.append(("text", x.shape[0]))
        return self.model.text_outputs(x)


def _batch(model, b=4):
    s, length = model.image_size, model.context_length
    return {
        "pairs": {
            "image": torch.randn(b, 3, s, s),
            "image_ssl": torch.randn(b, 2, 3, s, s),
            "text": torch.randint(1, 1000, (b, length)),
            "text_eda": torch.randint(1, 1000, (b, length)),
            "text_mlm": torch.stack([torch.randint(1, 1000, (b, length)), torch.full((b, length), -100)], 1),
        }
    }


def test_prefetch_batches_same_shape_views_and_matches_separate_calls(micro_model):
    model = micro_model.eval()
    batch = _batch(model)
    counting = CountingModel(model).eval()
    enc = Encoded(counting, batch)
    requests = [
        ("image", "image", "pairs", 0.0),
        ("image", "image_ssl", "pairs", 0.0),
        ("text", "text", "pairs", 0.0),
        ("text", "text_eda", "pairs", 0.0),
        ("text", "text_mlm", "pairs", 0.0),
    ]
    enc.prefetch(requests + requests)
    assert sorted(counting.calls) == [("image", 4 + 8, 0.0), ("text", 12)]  # one call per tower
    separate = Encoded(model, batch)
    with torch.no_grad():
        for view in ("image", "image_ssl"):
            assert enc.image(view)["features"].shape == separate.image(view)["features"].shape
            assert torch.allclose(enc.image(view)["features"], separate.image(view)["features"], atol=1e-5)
        for view in ("text", "text_eda", "text_mlm"):
            assert torch.allclose(enc.text(view)["tokens"], separate.text(view)["tokens"], atol=1e-5)
    assert len(counting.calls) == 2  # later lookups hit the memo


def test_recipe_prefetches_slip_views_in_one_image_call(micro_model):
    counting = CountingModel(micro_model)
    recipe = Recipe(micro_model, {"clip": {}, "simclr": {"mlp_dim": 32, "embed_dim": 16}})
    pretrainer = Pretrainer(counting, recipe).train()
    pretrainer(_batch(micro_model))
    assert [c for c in counting.calls if c[0] == "image"] == [("image", 12, 0.0)]
    counting.calls.clear()
    recipe = Recipe(
        micro_model, {"clip": {}, "simclr": {"mlp_dim": 32, "embed_dim": 16, "patch_dropout": 0.5}}
    )
    Pretrainer(counting, recipe).train()(_batch(micro_model))
    assert sorted(c for c in counting.calls if c[0] == "image") == [("image", 4, 0.0), ("image", 8, 0.5)]


def test_clip_can_drop_patches_of_its_own_view_only(micro_model):
    """FLIP masking inside a mix: SLIP with 50% patch dropout on the CLIP view, full SimCLR crops."""
    counting = CountingModel(micro_model)
    options = {"clip": {"patch_dropout": 0.5}, "simclr": {"mlp_dim": 32, "embed_dim": 16}}
    out = Pretrainer(counting, Recipe(micro_model, options)).train()(_batch(micro_model))
    assert sorted(c for c in counting.calls if c[0] == "image") == [("image", 4, 0.5), ("image", 8, 0.0)]
    assert torch.isfinite(out["loss"])
    counting.calls.clear()
    Pretrainer(counting, Recipe(micro_model, options)).eval()(_batch(micro_model))
    assert [c for c in counting.calls if c[0] == "image"] == [("image", 12, 0.0)]  # evaluation: all patches


def test_patch_dropout_keeps_cls_and_half_the_patches(micro_model):
    x = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)
    y = drop_patches(x, 0.5)
    assert y.shape == (2, 9, 3) and torch.equal(y[:, 0], x[:, 0])
    model = micro_model.train()
    image = torch.randn(3, 3, model.image_size, model.image_size)
    out = model.image_outputs(image, patch_dropout=0.5)
    assert out["tokens"].shape[1] == 8  # 16 patches -> 8 kept
    enc = Encoded(model.eval(), {"pairs": {"image_ssl": image.unsqueeze(1)}})
    assert enc.image("image_ssl", patch_dropout=0.5)["tokens"].shape[2] == 16  # no dropout in eval


def test_prefetch_does_not_pool_batchnorm_statistics_across_views():
    """Issue 19: a tower with BatchNorm in training mode encodes each view alone (its own batch
    statistics), so prefetching gives what encoding the views one by one gives."""
    from synclip.models import create_model

    torch.manual_seed(0)
    model = create_model("effnet-lite0-text").train()  # timm EfficientNet-Lite0 tower, BatchNorm trains
    counting = CountingModel(model)
    batch = _batch(model, b=3)
    enc = Encoded(counting, batch)
    enc.prefetch([("image", "image", "pairs", 0.0), ("image", "image_ssl", "pairs", 0.0)])
    assert [c[:2] for c in counting.calls] == [("image", 3), ("image", 6)]  # no (B + B * 2) call
    with torch.no_grad():
        alone = Encoded(model, batch)
        for view in ("image", "image_ssl"):
            assert torch.allclose(enc.image(view)["features"], alone.image(view)["features"], atol=1e-6)
    # the text tower has no BatchNorm: its views still share one call; an eval-mode tower merges too
    assert not Encoded(model, batch)._batch_statistics("text")
    assert not Encoded(model.eval(), batch)._batch_statistics("image")
