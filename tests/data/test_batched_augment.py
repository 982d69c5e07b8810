"""The batched augmentation path (data.augment=batched): per-sample parameters from per-sample seeds,
outputs shaped and ranged as the PIL path's, crop statistics as configured, JPEG draft decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from synclip.config import ConfigError, load_config
from synclip.data.batched import batched_views, ops
from synclip.data.batched.canvas import to_canvas
from synclip.data.collate import collate
from synclip.data.images import load_rgb
from synclip.data.shards import decode_record
from synclip.data.views import PIXELS, ViewDataset, make_views
from synclip.data.views.image import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from synclip.train.data import SeededItems

CPU = torch.device("cpu")
SLIP_VIEWS = {"image": {"size": 32, "scale": [0.5, 1.0]}, "image_ssl": {"num": 2, "size": 32}}


class Pictures(torch.utils.data.Dataset):
    """Random RGB images of varied sizes (some wider, some taller than the canvas)."""

    def __init__(self, n: int = 12):
        rng = np.random.default_rng(0)
        self.images = [
            Image.fromarray(rng.integers(0, 256, (30 + 9 * i, 90 - 5 * i, 3), dtype=np.uint8))
            for i in range(n)
        ]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "key": str(i)}


def _items(views, picks):
    """Items of (index, seed) pairs, seeded as the training sampler seeds them."""
    data = SeededItems(ViewDataset(Pictures(), views))
    return [data[pick] for pick in picks]


def _finish(augment, items):
    return augment(collate(items), CPU)


def test_a_samples_parameters_and_images_do_not_depend_on_its_batch():
    views, augment = batched_views(SLIP_VIEWS, None, side=64)
    alone = _finish(augment, _items(views, [(3, 1234)]))
    crowd_items = _items(views, [(7, 5), (3, 1234), (0, 99), (11, 42)])
    crowd = _finish(augment, crowd_items)
    for name in ("box", "factors", "order", "sigma", "flip"):  # params come from the sample's seed alone
        again = _items(views, [(3, 1234)])[0]["image_ssl"][name]
        assert torch.equal(crowd_items[1]["image_ssl"][name], again), name
    assert torch.allclose(crowd["image"][1], alone["image"][0], atol=1e-5)
    assert torch.allclose(crowd["image_ssl"][1], alone["image_ssl"][0], atol=1e-5)
    other_seed = _finish(augment, _items(views, [(3, 1235)]))
    assert not torch.allclose(other_seed["image_ssl"][0], alone["image_ssl"][0], atol=1e-3)


def test_outputs_have_the_pil_paths_shapes_dtypes_and_ranges():
    views, augment = batched_views(SLIP_VIEWS, None, side=64)
    picks = [(i, 100 + i) for i in range(8)]
    batched = _finish(augment, _items(views, picks))
    pil = collate(_items(make_views(SLIP_VIEWS, None, train=True), picks))
    assert PIXELS not in batched
    lowest = (0 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)  # (3,)
    highest = (1 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    for name in SLIP_VIEWS:
        got, want = batched[name], pil[name]
        assert got.shape == want.shape and got.dtype == want.dtype == torch.float32, name
        channels = got.transpose(-3, 0).reshape(3, -1)  # (3, everything else)
        assert (channels.min(1).values >= lowest - 1e-4).all() and (
            channels.max(1).values <= highest + 1e-4
        ).all()


def test_per_view_statistics_match_the_pil_path(emoji_corpus):
    """Over many emoji crops, the channel means and spread agree with the PIL path's."""
    from synclip.data.sources import CsvImageText

    source = CsvImageText(emoji_corpus / "twemoji.tsv", caption_key="caption")
    picks = [(i * 7, 1000 + i) for i in range(96)]
    views, augment = batched_views(SLIP_VIEWS, None, side=64)
    batched = augment(collate([SeededItems(ViewDataset(source, views))[p] for p in picks]), CPU)
    pil = collate(
        [SeededItems(ViewDataset(source, make_views(SLIP_VIEWS, None, train=True)))[p] for p in picks]
    )
    for name in SLIP_VIEWS:
        got = batched[name].transpose(-3, 0).reshape(3, -1)  # (3, ...)
        want = pil[name].transpose(-3, 0).reshape(3, -1)
        assert torch.allclose(got.mean(1), want.mean(1), atol=0.1), (name, got.mean(1), want.mean(1))
        assert torch.allclose(got.std(1), want.std(1), rtol=0.1), (name, got.std(1), want.std(1))


def test_crop_areas_and_random_steps_follow_the_configured_options():
    views, _ = batched_views({"image_ssl": {"num": 2, "size": 32, "scale": [0.2, 0.6]}}, None, side=64)
    image = Image.new("RGB", (64, 64))
    params = []
    for seed in range(300):
        torch.manual_seed(seed)
        params.append(views({"image": image, "key": "k"})["image_ssl"])
    boxes = torch.cat([p["box"] for p in params])  # (600, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 64**2
    assert ((area > 0.19) & (area < 0.61)).all() and 0.3 < area.mean() < 0.5
    rates = {
        name: torch.cat([p[name] for p in params]).float().mean().item()
        for name in ("jitter", "grey", "blur", "flip")
    }
    want = {"jitter": 0.8, "grey": 0.2, "blur": 0.5, "flip": 0.5}
    assert all(abs(rates[k] - want[k]) < 0.06 for k in want), rates
    assert not torch.cat([p["solarise"] for p in params]).any()  # solarize_p defaults to 0
    sigma = torch.cat([p["sigma"] for p in params])
    assert 0.1 <= sigma.min() and sigma.max() <= 2.0


def test_crops_never_reach_the_canvas_padding():
    """A white wide image on a canvas: every crop is white, whatever its box (nothing from beyond
    the image is blended in at the edges)."""
    views, augment = batched_views({"image": {"size": 16, "scale": [0.08, 1.0]}}, None, side=48)
    items = []
    for seed in range(16):
        torch.manual_seed(seed)
        items.append(views({"image": Image.new("RGB", (120, 30), (255, 255, 255)), "key": str(seed)}))
    boxes = torch.cat([item["image"]["box"] for item in items])  # (16, 4) in canvas pixels
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 48).all() and (boxes[:, 3] <= 12).all()  # 48 x 12
    out = augment(collate(items), CPU)["image"]  # (16, 3, 16, 16)
    white = (1 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    assert torch.allclose(out, white[None, :, None, None].expand_as(out), atol=1e-4)


def test_a_whole_image_crop_at_its_own_size_is_the_image():
    pixels = torch.rand(2, 3, 24, 24)
    boxes = torch.tensor([[[0.0, 0.0, 24.0, 24.0]], [[0.0, 0.0, 24.0, 24.0]]])  # (B, N, 4)
    assert torch.allclose(ops.resized_crops(pixels, boxes, 24), pixels, atol=1e-6)
    left = torch.tensor([[[0.0, 0.0, 12.0, 24.0]]])  # the left half, stretched back to 24 wide
    half = ops.resized_crops(pixels[:1], left, 24)
    assert torch.allclose(half[0, :, :, ::2].mean(), pixels[0, :, :, :12].mean(), atol=0.02)


def test_colour_jitter_follows_torchvisions_formulas_in_each_images_order():
    x = torch.rand(2, 3, 16, 16)
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.08], [0.8, 1.25, 0.6, -0.05]])  # (K, 4)
    order = torch.tensor([[3, 0, 2, 1], [1, 2, 0, 3]])
    got = ops.colour_jitter(x, torch.tensor([True, True]), factors, order)
    steps = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for k in range(2):
        want = x[k]
        for step in order[k].tolist():
            want = steps[step](want, factors[k, step].item())
        assert torch.allclose(got[k], want, atol=2e-3), k
    unchanged = ops.colour_jitter(x, torch.tensor([False, True]), factors, order)
    assert torch.equal(unchanged[0], x[0])


def test_jpeg_draft_decoding_keeps_about_the_asked_size(tmp_path):
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    big.save(tmp_path / "big.jpg", quality=90)
    big.save(tmp_path / "big.png")
    drafted = load_rgb(tmp_path / "big.jpg", "k", draft=96)
    assert drafted.size == (200, 150)  # scaled by 1/4: both sides stay >= 96
    assert load_rgb(tmp_path / "big.png", "k", draft=96).size == (800, 600)  # PNG has no draft mode
    assert load_rgb(tmp_path / "big.jpg", "k").size == (800, 600)
    record = {"__key__": "k", "jpg": (tmp_path / "big.jpg").read_bytes()}  # a webdataset shard's record
    assert decode_record(record, draft=96)["image"].size == (200, 150)
    canvas, (h, w) = to_canvas(drafted, 96)
    assert canvas.shape == (3, 96, 96) and canvas.dtype == torch.uint8 and (h, w) == (72, 96)
    assert canvas[:, h:].eq(canvas[:, h - 1 : h]).all()  # padding repeats the edge


def test_the_augment_option_is_checked():
    with pytest.raises(ConfigError, match="data.augment must be pil or batched"):
        load_config("clip", ["data.augment=gpu"])
    with pytest.raises(ConfigError, match="data.decode_size"):
        load_config("clip", ["data.augment=batched", "data.decode_size=0"])


def test_solarisation_inverts_bright_pixels_on_both_paths():
    """BYOL's solarisation (solarize_p): a white image comes out black on either path."""
    views = {"image_ssl": {"num": 2, "size": 16, "solarize_p": 1.0, "jitter_p": 0.0, "grey_p": 0.0}}
    sample = {"image": Image.new("RGB", (40, 40), (255, 255, 255)), "key": "w"}
    black = (0 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)  # (3,)
    torch.manual_seed(0)
    pil = make_views(views, None, train=True)(sample)["image_ssl"]  # (2, 3, 16, 16)
    worker, augment = batched_views(views, None, side=32)
    torch.manual_seed(0)
    batched = augment(collate([worker(sample)]), CPU)["image_ssl"][0]  # (2, 3, 16, 16)
    for out in (pil, batched):
        assert torch.allclose(out, black[None, :, None, None].expand_as(out), atol=1e-4)


def test_multi_crop_views_keep_dinos_per_crop_probabilities_and_the_pil_shapes():
    """image_global: the first crop always blurred and never solarised (DINO's asymmetric pair)."""
    views = {"image_global": {"size": 32}, "image_local": {"size": 16, "num": 3}}
    worker, augment = batched_views(views, None, side=64)
    picks = [(i, 500 + i) for i in range(6)]
    items = _items(worker, picks)
    first = torch.stack([item["image_global"]["blur"][0] for item in items])  # (6,)
    assert first.all() and not torch.stack([item["image_global"]["solarise"][0] for item in items]).any()
    batched = _finish(augment, items)
    pil = collate(_items(make_views(views, None, train=True), picks))
    for name, shape in (("image_global", (6, 2, 3, 32, 32)), ("image_local", (6, 3, 3, 16, 16))):
        assert batched[name].shape == pil[name].shape == shape and batched[name].dtype == torch.float32
