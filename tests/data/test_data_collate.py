import pytest
import torch

from synclip.data import collate


def test_collate_stacks_and_counts_bad():
    items = [
        {"image": torch.zeros(3, 4, 4), "label": 1, "key": "a", "w": 0.5},
        {"__bad__": "corrupt_image", "key": "b"},
        {"image": torch.ones(3, 4, 4), "label": 2, "key": "c", "w": 1.5},
    ]
    batch = collate(items)
    assert batch["image"].shape == (2, 3, 4, 4)
    assert batch["label"].dtype == torch.long and batch["label"].tolist() == [1, 2]
    assert batch["w"].dtype == torch.float32 and batch["key"] == ["a", "c"]
    assert (batch["size"], batch["n_items"], batch["n_bad"], batch["bad"]) == (
        2,
        3,
        1,
        [("b", "corrupt_image")],
    )


def test_all_bad_batch_has_only_counters():
    batch = collate([{"__bad__": "missing_file", "key": "x"}, {"__bad__": "empty_caption", "key": "y"}])
    assert batch == {
        "size": 0,
        "n_items": 2,
        "n_bad": 2,
        "bad": [("x", "missing_file"), ("y", "empty_caption")],
    }


def test_mismatched_shapes_fail_loudly():
    with pytest.raises(RuntimeError):
        collate([{"image": torch.zeros(3, 4, 4), "key": "a"}, {"image": torch.zeros(3, 5, 5), "key": "b"}])
