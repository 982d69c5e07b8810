"""Views, the ViewDataset's bad-sample markers and a real multi-worker DataLoader over them."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from synclip.data import (
    VIEW_OPTIONS,
    CsvImageText,
    ViewDataset,
    collate,
    get_tokenizer,
    make_views,
    register_view,
    view_defaults,
)
from synclip.registry import VIEWS


@pytest.fixture(scope="module")
def tokenizer():
    return get_tokenizer()


def photo(w=40, h=30):
    return Image.linear_gradient("L").resize((w, h)).convert("RGB")


def test_image_view_train_and_eval(tokenizer):
    sample = {"image": photo(), "key": "p"}
    train = make_views({"image": {"size": 24}}, tokenizer, train=True)(sample)["image"]
    assert train.shape == (3, 24, 24) and train.dtype == torch.float32 and type(train) is torch.Tensor
    evaluate = make_views({"image": {}}, tokenizer, train=False)
    a, b = evaluate(sample)["image"], evaluate(sample)["image"]
    assert a.shape == (3, 48, 48) and torch.equal(a, b)  # eval is deterministic
    white = make_views({"image": {"size": 8}}, None, train=False)(
        {"image": Image.new("RGB", (9, 9), "white")}
    )
    expected = (1 - torch.tensor(VIEW_OPTIONS["image"]["mean"])) / torch.tensor(VIEW_OPTIONS["image"]["std"])
    assert torch.allclose(white["image"][:, 4, 4], expected, atol=1e-5)


def test_text_and_label_views(tokenizer):
    views = make_views({"text": {}, "label": {}}, tokenizer, train=True)
    out = views({"caption": "grinning face", "label": 3, "key": "k"})
    assert out["text"].shape == (77,) and out["text"].dtype == torch.long and out["label"] == 3
    with pytest.raises(ValueError, match="tokenizer"):
        make_views({"text": {}}, None, train=True)
    with pytest.raises(KeyError, match="caption"):
        views({"label": 1, "key": "k"})


def test_options_are_validated(tokenizer):
    assert view_defaults("image")["size"] == 48 and view_defaults("text") == {}
    with pytest.raises(ValueError, match="valid options: interpolation, mean, ratio, scale, size, std"):
        make_views({"image": {"szie": 32}}, tokenizer, train=True)
    with pytest.raises(ValueError, match="known views"):
        make_views({"picture": {}}, tokenizer, train=True)
    with pytest.raises(ValueError, match="interpolation"):
        make_views({"image": {"interpolation": "cubic"}}, tokenizer, train=True)
    with pytest.raises(ValueError, match="reserved"):
        make_views({"key": {"kind": "label"}}, tokenizer, train=True)


def test_kind_lets_one_view_appear_twice(tokenizer):
    views = make_views({"image": {"size": 16}, "big": {"kind": "image", "size": 32}}, tokenizer, train=False)
    out = views({"image": photo(), "key": "p"})
    assert out["image"].shape == (3, 16, 16) and out["big"].shape == (3, 32, 32)


def test_new_views_register_without_touching_the_module(tokenizer):
    if "upper_caption" not in VIEWS:

        @register_view("upper_caption", repeat=1)
        def build(cfg, tokenizer, train):
            return lambda sample: sample["caption"].upper() * cfg["repeat"]

    views = make_views({"upper_caption": {"repeat": 2}}, tokenizer, train=True)
    assert views({"caption": "ok", "key": "k"}) == {"upper_caption": "OKOK"}


def test_view_dataset_marks_bad_samples_and_loader_survives(messy_dir, tokenizer, tmp_path):
    path = tmp_path / "pairs.tsv"
    rows = ["good.jpg\tfine", "random.png\tbroken", "absent.png\tgone", "rgba.png\tfine too", "grey.png\t "]
    path.write_text("filepath\tcaption\n" + "\n".join(f"{messy_dir}/{r}" for r in rows) + "\n")
    views = make_views({"image": {"size": 16}, "text": {}}, tokenizer, train=True)
    dataset = ViewDataset(CsvImageText(path, caption_key="caption"), views)
    assert dataset[1] == {"__bad__": "corrupt_image", "key": f"{messy_dir}/random.png"}
    assert set(dataset[0]) == {"image", "text", "key"}
    loader = DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=collate)
    (batch,) = list(loader)
    assert batch["size"] == 2 and batch["n_bad"] == 3 and batch["n_items"] == 5
    assert batch["image"].shape == (2, 3, 16, 16) and batch["text"].shape == (2, 77)
    assert sorted(reason for _, reason in batch["bad"]) == ["corrupt_image", "empty_caption", "missing_file"]
