"""The aclip objective: the EMA teacher's attention picks the online patches; the teacher learns only
through its momentum update."""

import pytest
import torch

from synclip.models.factory import create_model
from synclip.models.masked_embed import masked_embeds
from synclip.objectives.base import Encoded
from synclip.recipe import Pretrainer, Recipe
from synclip.train.optim import create_optimizer

SMALL = {"simclr_mlp_dim": 32, "simclr_dim": 16, "byol_mlp_dim": 32, "byol_dim": 16, "block": 1}
FULL = [0.0, 0.0, 1.0, 1.0]


def _setup(seed=0, **options):
    torch.manual_seed(seed)
    model = create_model("micro-vit-32")
    recipe = Recipe(model, {"aclip": {**SMALL, **options}})
    return Pretrainer(model, recipe).train(), recipe.objectives["aclip"]


def _batch(b=4, boxes=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor(boxes or [[0.1, 0.0, 0.8, 0.9], [0.0, 0.2, 1.0, 0.7]]).expand(b, 2, 4).clone()
    pairs = {
        "image_aclip": torch.randn(b, 3, 3, 32, 32, generator=g),
        "image_aclip_boxes": boxes,
        "text": torch.randint(1, 400, (b, 16), generator=g),
        "size": b,
    }
    return {"pairs": pairs}


def _attention_by_hand(visual, image):
    x = masked_embeds(visual, image)
    rows = []
    for block in visual.transformer.resblocks:
        h = block.ln_1(x)
        rows.append(block.attn(h, h, h, need_weights=True, average_attn_weights=False)[1][:, :, 0, 1:])
        x = block(x)
    return torch.stack(rows).mean(0).mean(1)  # (B, P)


def test_online_views_keep_the_patches_the_teacher_attends_to_most():
    pretrainer, aclip = _setup()
    batch = _batch(boxes=[FULL, FULL])  # online crops = the teacher crop's frame: no resampling
    enc = Encoded(pretrainer.model, batch)
    pretrainer.recipe(enc, batch)
    keep = enc.memo(("aclip", id(aclip)), None)["keep"]  # (B, 2, K), cached by the forward
    assert keep.shape == (4, 2, 8)  # half of the 4 x 4 patches
    with torch.no_grad():
        attention = _attention_by_hand(aclip.teacher.module["visual"], batch["pairs"]["image_aclip"][:, 2])
    top = attention.argsort(dim=1, descending=True)[:, :8].sort(dim=1).values  # (B, 8)
    assert torch.equal(keep[:, 0], top) and torch.equal(keep[:, 1], top)


def test_dropped_patches_do_not_reach_the_online_view():
    pretrainer, aclip = _setup()
    batch = _batch()
    enc = Encoded(pretrainer.model, batch)
    out = enc.memo(("aclip", id(aclip)), lambda b: aclip._encode(pretrainer.model, b))
    keep = out["keep"][:, 0]  # (B, K) of the first online crop
    changed = {"pairs": dict(batch["pairs"])}
    crops = batch["pairs"]["image_aclip"].clone()
    for i in range(4):  # scribble over every dropped 8 x 8 patch of crop 1
        for p in set(range(16)) - set(keep[i].tolist()):
            r, c = divmod(p, 4)
            crops[i, 0, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = torch.randn(3, 8, 8)
    changed["pairs"]["image_aclip"] = crops
    again = aclip._encode(pretrainer.model, changed)
    assert torch.equal(again["keep"], out["keep"])  # the teacher crop is unchanged
    assert torch.allclose(again["embed"][:, 0], out["embed"][:, 0], atol=1e-6)


def test_teacher_gets_no_gradient_is_not_optimised_and_moves_by_its_momentum():
    pretrainer, aclip = _setup()
    optimizer = create_optimizer(pretrainer, 1e-2, 0.1, (0.9, 0.98), 1e-8)
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    teacher = dict(aclip.teacher.module.named_parameters())
    assert not any(p.requires_grad or id(p) in optimised for p in teacher.values())
    before = {k: v.clone() for k, v in teacher.items()}

    pretrainer.set_progress(3, 10)
    out = pretrainer(_batch())
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.values())
    optimizer.step()
    pretrainer.post_step()

    m = aclip.teacher.momentum(0.4)  # updated after step 3 with the schedule's value for step 4
    student = dict(aclip._student().named_parameters())
    for name, param in teacher.items():
        expected = m * before[name] + (1 - m) * student[name].detach()
        assert torch.allclose(param, expected, atol=1e-6), name
    moved = teacher["visual.transformer.resblocks.0.mlp.c_fc.weight"]
    assert not torch.equal(moved, before["visual.transformer.resblocks.0.mlp.c_fc.weight"])


def test_loss_is_the_official_weighting_of_its_parts():
    pretrainer, _ = _setup()
    out = pretrainer(_batch())
    parts = out["aclip_clip_loss"] + out["aclip_simclr_loss"] + 2.0 * out["aclip_byol_loss"]
    assert torch.allclose(out["loss"].detach(), parts, atol=1e-5)
    assert out["aclip_momentum"].item() == pytest.approx(0.996, abs=1e-4)  # start of the schedule


def test_patch_embedding_is_frozen_as_in_the_official_code_unless_asked():
    pretrainer, _ = _setup()
    assert not pretrainer.model.visual.conv1.weight.requires_grad
    pretrainer, _ = _setup(freeze_patch_embed=False)
    assert pretrainer.model.visual.conv1.weight.requires_grad


def test_towers_it_cannot_read_are_refused_with_a_fix():
    with pytest.raises(ValueError, match="class token"):
        Recipe(create_model("micro-vit-32-avg"), {"aclip": SMALL})
    with pytest.raises(ValueError, match="must divide"):
        Recipe(create_model("micro-vit-32"), {"aclip": {**SMALL, "block": 3}})


def test_gradient_accumulation_matches_one_big_batch(make_batch):
    import contextlib

    from synclip.train.accumulate import TrainForward, accumulate_backward

    ref, _ = _setup()
    batch = make_batch(ref.model, ref.recipe.views()["pairs"], n=8)  # real emoji crops and boxes
    out = ref(batch)
    out["loss"].backward()
    acc, _ = _setup()
    got = accumulate_backward(
        TrainForward(acc), acc, batch, 2, lambda loss: loss.backward(), contextlib.nullcontext
    )
    assert torch.allclose(got["loss"], out["loss"], atol=1e-5)
    expected = dict(ref.named_parameters())
    for name, p in acc.named_parameters():
        if p.grad is not None:
            assert torch.allclose(p.grad, expected[name].grad, rtol=1e-3, atol=1e-6), name


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_teacher_of_an_uninterrupted_one(emoji_subset, tmp_path):
    from run_helpers import small_run_overrides
    from synclip.config import load_config
    from synclip.io.checkpoint import read_synclip_checkpoint
    from synclip.train.loop import train

    small = {
        f"objectives.aclip.{k}": 32 for k in ("simclr_mlp_dim", "simclr_dim", "byol_mlp_dim", "byol_dim")
    }

    def run(name, steps, **extra):
        base = {"train.name": name, "train.max_steps": steps, "train.epochs": 1, "train.batch_size": 16}
        return train(
            load_config("aclip", small_run_overrides(emoji_subset, tmp_path, **base, **small, **extra))
        )

    straight = run("straight", 4)
    run("resumed", 2)
    resumed = run("resumed", 4, **{"train.resume": "auto"})
    a = read_synclip_checkpoint(straight / "checkpoint.pt")["recipe"]
    b = read_synclip_checkpoint(resumed / "checkpoint.pt")["recipe"]
    assert any(".teacher." in k for k in a)
    for key in a:  # the EMA teacher, heads and temperature, bit for bit
        assert torch.equal(a[key], b[key]), key
