"""Gradient accumulation keeps the contrastive batch whole: k micro-batches of B == one batch of k * B."""

import contextlib

import pytest
import torch

from synclip.models import create_model
from synclip.recipe import Pretrainer, Recipe
from synclip.train.accumulate import TrainForward, accumulate_backward, split_batch


def _pretrainer():
    torch.manual_seed(0)
    model = create_model("micro-vit-32")
    return Pretrainer(model, Recipe(model, {"clip": {"weight": 1.0}})).train()


def _batch(n, model):
    g = torch.Generator().manual_seed(1)
    size = model.image_size
    return {
        "pairs": {
            "image": torch.randn(n, 3, size, size, generator=g),
            "text": torch.randint(1, 49407, (n, model.context_length), generator=g),
            "key": [str(i) for i in range(n)],
            "size": n,
        }
    }


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("k", [2, 4])
def test_k_micro_batches_give_the_gradient_of_one_big_batch(k):
    ref = _pretrainer()
    batch = _batch(16, ref.model)
    out = ref(batch)
    out["loss"].backward()
    expected = _grads(ref)

    acc = _pretrainer()
    got_out = accumulate_backward(
        TrainForward(acc), acc, batch, k, lambda loss: loss.backward(), contextlib.nullcontext
    )
    got = _grads(acc)
    assert torch.allclose(got_out["loss"], out["loss"], atol=1e-5)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-6), name
    assert "recipe.objectives.clip.logit_scale" in got  # divided by k, not counted k times


def test_split_batch_cuts_tensors_and_lists():
    batch = _batch(8, create_model("micro-vit-32"))
    parts = split_batch(batch, 4)
    assert [p["pairs"]["size"] for p in parts] == [2, 2, 2, 2]
    assert parts[1]["pairs"]["key"] == ["2", "3"]
    assert torch.equal(torch.cat([p["pairs"]["image"] for p in parts]), batch["pairs"]["image"])
    with pytest.raises(ValueError, match="does not split"):
        split_batch(batch, 3)


def test_grad_checkpointing_gives_the_same_gradient():
    plain, ckpt = _pretrainer(), _pretrainer()
    ckpt.model.set_grad_checkpointing(True)
    batch = _batch(8, plain.model)
    plain(batch)["loss"].backward()
    ckpt(batch)["loss"].backward()
    a, b = _grads(plain), _grads(ckpt)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-6), name
