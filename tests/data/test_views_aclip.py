"""The image_aclip view: two online crops, a teacher crop holding both, and where they sit in it."""

import numpy as np
import pytest
import torch
from PIL import Image

from synclip.data.collate import collate
from synclip.data.views import make_views
from synclip.data.views.image_aclip import teacher_box
from synclip.models.attentive_mask import scores_in_crops

PLAIN = {"jitter_p": 0.0, "grey_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}  # geometry only


def _ramps(height=90, width=120):
    """Red grows left to right, green top to bottom: any crop's colours say where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([255 * x / (width - 1), 255 * y / (height - 1), np.full_like(x, 128.0)], -1)
    return {"image": Image.fromarray(rgb.round().astype("uint8")), "caption": "a ramp", "key": "r"}


def test_teacher_box_holds_both_crops_inside_the_image():
    torch.manual_seed(0)
    for _ in range(200):
        a = tuple(int(v) for v in torch.randint(0, 40, (2,))) + (30, 25)
        b = tuple(int(v) for v in torch.randint(0, 40, (2,))) + (20, 35)
        top, left, h, w = teacher_box(a, b, 80, 90)
        assert 0 <= top and 0 <= left and top + h <= 80 and left + w <= 90
        for box in (a, b):
            assert top <= box[0] and box[0] + box[2] <= top + h
            assert left <= box[1] and box[1] + box[3] <= left + w


def test_boxes_locate_each_online_crop_inside_the_teacher_crop():
    views = make_views(
        {"image_aclip": {"size": 32, "mean": (0, 0, 0), "std": (1, 1, 1), **PLAIN}}, None, True
    )
    for seed in range(5):
        torch.manual_seed(seed)
        out = views(_ramps())
        crops, boxes = out["image_aclip"], out["image_aclip_boxes"]  # (3, 3, 32, 32), (2, 4)
        assert crops.shape == (3, 3, 32, 32) and boxes.shape == (2, 4)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= 1 + 1e-6).all()
        assert (boxes[:, 1] + boxes[:, 3] <= 1 + 1e-6).all()
        # resampling the teacher crop at each box reproduces the online crop (ramps are linear)
        for channel in (0, 1):
            seen = scores_in_crops(crops[2, channel].unsqueeze(0), boxes.unsqueeze(0))[0]  # (2, 32, 32)
            assert torch.allclose(seen, crops[:2, channel], atol=0.03), (seed, channel)


def test_online_crops_are_colour_augmented_and_the_teacher_crop_is_not():
    views = make_views({"image_aclip": {"size": 32, "grey_p": 1.0}}, None, True)  # always grey online
    torch.manual_seed(0)
    crops = views(_ramps())["image_aclip"]
    unnormalised = crops * torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1) + torch.tensor(
        [0.48145466, 0.4578275, 0.40821073]
    ).view(3, 1, 1)
    online_spread = (unnormalised[:2].max(1).values - unnormalised[:2].min(1).values).abs().max()
    teacher_spread = (unnormalised[2].max(0).values - unnormalised[2].min(0).values).abs().max()
    assert online_spread < 0.02 < teacher_spread  # grey pixels have equal channels; the teacher's do not


def test_evaluation_gives_centre_crops_and_full_boxes():
    out = make_views({"image_aclip": {"size": 32}}, None, False)(_ramps())
    assert torch.equal(out["image_aclip"][0], out["image_aclip"][2])
    assert out["image_aclip_boxes"].tolist() == [[0.0, 0.0, 1.0, 1.0]] * 2


def test_boxes_travel_in_the_batch_beside_the_crops():
    views = make_views({"image_aclip": {"size": 32}}, None, True)
    batch = collate([{**views(_ramps()), "key": i} for i in range(3)])
    assert batch["image_aclip"].shape == (3, 3, 3, 32, 32)
    assert batch["image_aclip_boxes"].shape == (3, 2, 4)


def test_bad_scale_is_an_error():
    with pytest.raises(ValueError, match="scale"):
        make_views({"image_aclip": {"scale": (0.0, 1.0)}}, None, True)
