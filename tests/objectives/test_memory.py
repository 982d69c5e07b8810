"""The nearest-neighbour queue: FIFO order, top-1 cosine lookup, and checkpoint round trips."""

import io

import torch
import torch.nn.functional as F

from synclip.memory import FeatureQueue
from synclip.models import create_model
from synclip.recipe import Recipe


def test_queue_is_fifo_and_wraps():
    q = FeatureQueue(5, 2)
    q.push(torch.tensor([[1.0, 0.0]] * 3))
    assert int(q.filled) == 3 and int(q.ptr) == 3
    q.push(torch.tensor([[0.0, 1.0]] * 4))
    assert int(q.filled) == 5 and int(q.ptr) == 2
    assert torch.equal(q.queue, torch.tensor([[0.0, 1.0]] * 2 + [[1.0, 0.0]] + [[0.0, 1.0]] * 2))


def test_nearest_is_the_top1_cosine_neighbour_and_empty_queue_returns_input():
    q = FeatureQueue(8, 3)
    x = torch.randn(4, 3)
    assert torch.allclose(q.nearest(x), F.normalize(x, dim=-1))
    bank = F.normalize(torch.randn(8, 3), dim=-1)
    q.push(bank)
    expected = bank[(F.normalize(x, dim=-1) @ bank.T).argmax(-1)]
    assert torch.allclose(q.nearest(x), expected)
    assert not q.nearest(x.requires_grad_(True)).requires_grad


def test_queue_survives_save_and_load_in_the_recipe_state():
    model = create_model("micro-vit-32")
    recipe = Recipe(model, {"nearest_neighbour": {"queue_size": 16}})
    queue = recipe.objectives["nearest_neighbour"].queue
    queue.push(torch.randn(10, model.embed_dim))
    buffer = io.BytesIO()
    torch.save(recipe.state_dict(), buffer)  # what synclip's checkpoint stores under "recipe"
    assert "objectives.nearest_neighbour.queue.queue" in recipe.state_dict()
    fresh = Recipe(model, {"nearest_neighbour": {"queue_size": 16}})
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    restored = fresh.objectives["nearest_neighbour"].queue
    assert torch.equal(restored.queue, queue.queue) and int(restored.ptr) == 10 and int(restored.filled) == 10


def test_queue_fills_once_per_step_in_training_only(micro_model):
    from synclip.objectives import Encoded

    recipe = Recipe(micro_model, {"nearest_neighbour": {"queue_size": 64, "image_view": "image"}})
    objective = recipe.objectives["nearest_neighbour"]
    s, length = micro_model.image_size, micro_model.context_length
    batch = {
        "pairs": {
            "image": torch.randn(4, 3, s, s),
            "text": torch.randint(1, 1000, (4, length)),
            "text_eda": torch.randint(1, 1000, (4, length)),
        }
    }
    recipe.eval()
    with torch.no_grad():
        recipe(Encoded(micro_model, batch), batch)
    recipe.post_step()
    assert int(objective.queue.filled) == 0
    recipe.train()
    for _ in range(2):  # e.g. gradient accumulation runs the forward twice per step
        recipe(Encoded(micro_model, batch), batch)
    recipe.post_step()
    assert int(objective.queue.filled) == 8  # caption + EDA caption of 4 pairs, once
