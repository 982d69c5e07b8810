"""MIM masks: exact counts, BEiT block masks are clustered, per-sample seeding, and the image_mask views."""

import pytest
import torch
from skimage.measure import label

from synclip.data.masks import block_mask, random_mask
from synclip.data.views import make_views
from synclip.train.data import resolve_views


def _components(mask: torch.Tensor, side: int) -> int:
    """Number of 4-connected masked regions of a flat mask on a side x side grid."""
    return int(label(mask.view(side, side).numpy(), connectivity=1).max())


@pytest.mark.parametrize("make", [random_mask, block_mask])
@pytest.mark.parametrize(("h", "w", "ratio"), [(14, 14, 0.4), (4, 4, 0.4), (7, 5, 0.75), (16, 16, 0.6)])
def test_masks_have_the_exact_count_and_shape(make, h, w, ratio):
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        mask = make(h, w, ratio, generator=g)
        assert mask.shape == (h * w,) and mask.dtype == torch.bool
        assert int(mask.sum()) == round(ratio * h * w)


def test_block_masks_are_spatially_clustered():
    g = torch.Generator().manual_seed(0)
    blocks = [_components(block_mask(14, 14, 0.4, generator=g), 14) for _ in range(50)]
    randoms = [_components(random_mask(14, 14, 0.4, generator=g), 14) for _ in range(50)]
    assert sum(blocks) / 50 < 6 < sum(randoms) / 50  # a few blocks vs dozens of scattered patches


def test_block_mask_respects_min_block_and_aspect():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):  # 40% of 7 x 7 = 20 patches; the first block is a square of >= 16
        mask = block_mask(7, 7, 0.4, min_block=16, aspect=(1, 1), generator=g)
        regions = label(mask.view(7, 7).numpy(), connectivity=1)  # (7, 7) region ids, 0 = visible
        assert int(mask.sum()) == 20 and max((regions == i).sum() for i in range(1, regions.max() + 1)) >= 16


def test_masks_are_deterministic_under_a_seed():
    for make in (random_mask, block_mask):
        a = make(14, 14, 0.4, generator=torch.Generator().manual_seed(3))
        b = make(14, 14, 0.4, generator=torch.Generator().manual_seed(3))
        c = make(14, 14, 0.4, generator=torch.Generator().manual_seed(4))
        assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 0.01, -0.5])
def test_bad_ratios_are_clear_errors(ratio):
    with pytest.raises(ValueError, match="ratio"):
        random_mask(4, 4, ratio)


def test_mask_views_take_the_grid_from_the_model_and_follow_the_sample_seed():
    cfgs = resolve_views(["image_mask", "image_mask_mae"], {}, image_size=32, patch_size=8)
    assert cfgs["image_mask"]["grid"] == 4 and cfgs["image_mask_mae"]["grid"] == 4
    views = make_views(cfgs, None, train=True)
    torch.manual_seed(7)  # what the loader does per sample
    first = views({"key": "a"})
    torch.manual_seed(7)
    again = views({"key": "a"})
    assert first["image_mask"].shape == (16,) and int(first["image_mask"].sum()) == round(0.4 * 16)
    assert int(first["image_mask_mae"].sum()) == 12  # MAE's 75% random default
    assert all(torch.equal(first[k], again[k]) for k in first)
    seen = {tuple(views({"key": "a"})["image_mask"].tolist()) for _ in range(10)}
    assert len(seen) > 1  # another draw of the RNG gives another mask


def test_mask_view_options_and_errors():
    views = make_views({"image_mask": {"grid": 6, "ratio": 0.5, "masking": "random"}}, None, train=True)
    assert int(views({})["image_mask"].sum()) == 18
    with pytest.raises(ValueError, match="grid"):
        make_views(resolve_views(["image_mask"], {}, image_size=32), None, train=True)  # no patch size
    with pytest.raises(ValueError, match="grid"):
        resolve_views(["image_mask"], {"image_mask": {"grid": 5}}, image_size=32, patch_size=8)
    with pytest.raises(ValueError, match="masking"):
        make_views({"image_mask": {"grid": 4, "masking": "blocks"}}, None, train=True)
