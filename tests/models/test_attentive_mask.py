"""A-CLIP's attentive selection: the asked fraction, the highest scores, the same answer for a sample
whatever its batch; the teacher's score map carried onto a crop inside its view."""

import pytest
import torch

from synclip.models.attentive_mask import attentive_keep, kept_blocks, scores_in_crops


@pytest.mark.parametrize(
    ("grid", "block", "keep", "kept"),
    [
        (6, 1, 0.5, 18),  # tiny-vit-48 with the aclip recipe: exactly half of 36 patches
        (4, 1, 0.25, 4),
        (4, 2, 0.5, 8),  # 2 of 4 blocks of 4 patches
        (14, 2, 0.5, 100),  # ViT-B/16 as A-CLIP runs it: 25 of 49 blocks (int(49 * 0.5) + 1 officially)
    ],
)
def test_keeps_exactly_the_asked_fraction(grid, block, keep, kept):
    scores = torch.rand(5, grid, grid)
    index = attentive_keep(scores, keep, block)
    assert index.shape == (5, kept)
    for row in index:  # distinct patches, in range, ascending
        assert len(set(row.tolist())) == kept
        assert row.min() >= 0 and row.max() < grid * grid
        assert torch.equal(row, row.sort().values)


def test_keeps_the_highest_scoring_patches():
    scores = torch.randperm(36).float().reshape(1, 6, 6) / 36  # distinct scores
    index = attentive_keep(scores, 0.5, block=1)[0]
    top = scores.flatten().argsort(descending=True)[:18]
    assert set(index.tolist()) == set(top.tolist())
    # every kept patch scores above every dropped one
    kept = torch.zeros(36, dtype=torch.bool)
    kept[index] = True
    assert scores.flatten()[kept].min() > scores.flatten()[~kept].max()


def test_blocks_are_ranked_by_their_mean_score():
    scores = torch.zeros(1, 4, 4)
    scores[0, 2:, :2] = 1.0  # bottom-left block: highest mean
    scores[0, 0, 3] = 3.0  # one hot patch in the top-right block (mean 0.75)
    index = attentive_keep(scores, 0.5, block=2)[0]
    # bottom-left block (patches 8, 9, 12, 13) and top-right block (2, 3, 6, 7)
    assert index.tolist() == [2, 3, 6, 7, 8, 9, 12, 13]


def test_selection_depends_on_the_sample_alone():
    scores = torch.rand(8, 6, 6)
    together = attentive_keep(scores, 0.5)
    alone = torch.cat([attentive_keep(scores[i : i + 1], 0.5) for i in range(8)])
    shuffled = torch.randperm(8)
    assert torch.equal(together, alone)
    assert torch.equal(attentive_keep(scores[shuffled], 0.5), together[shuffled])


def test_ties_are_broken_by_position():
    scores = torch.ones(3, 4, 4)  # every patch equally relevant
    index = attentive_keep(scores, 0.5)
    assert index.tolist() == [list(range(8))] * 3


def test_bad_fraction_and_block_are_errors():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        kept_blocks(36, 0.0)
    with pytest.raises(ValueError, match="must divide the patch grid"):
        attentive_keep(torch.rand(1, 6, 6), 0.5, block=4)


def test_full_box_returns_the_teacher_scores():
    scores = torch.rand(2, 6, 6)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(2, 1, 4)
    assert torch.allclose(scores_in_crops(scores, boxes)[:, 0], scores, atol=1e-6)


def test_a_crop_sees_its_region_of_the_teacher_map():
    # a linear ramp along x is reproduced exactly by bilinear sampling inside the map
    grid = 8
    ramp = torch.arange(grid).float().expand(grid, grid).unsqueeze(0)  # (1, 8, 8): value = column
    boxes = torch.tensor([[[0.1, 0.25, 0.5, 0.5]]])  # top 10%, left quarter, half height, half width
    out = scores_in_crops(ramp, boxes)[0, 0]  # (8, 8)
    # crop column i sits at teacher pixel x = 0.25 * 8 + (i + 0.5) * 0.5 - 0.5
    expected = 0.25 * grid + (torch.arange(grid) + 0.5) * 0.5 - 0.5
    assert torch.allclose(out, expected.expand(grid, grid), atol=1e-5)
    ramp_y = ramp.transpose(1, 2)  # value = row
    out_y = scores_in_crops(ramp_y, boxes)[0, 0]
    expected_y = 0.1 * grid + (torch.arange(grid) + 0.5) * 0.5 - 0.5
    assert torch.allclose(out_y, expected_y.unsqueeze(1).expand(grid, grid), atol=1e-5)
