"""Two real gloo processes must reproduce the single-process loss and gradients on the global batch."""

import pytest
import torch
import torch.nn.functional as F

from dist_utils import run_distributed
from synclip.losses import clip_loss

pytestmark = pytest.mark.distributed


def _clip_shard(rank, world, image, text, scale):
    b = image.shape[0] // world
    img = image[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    txt = text[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    loss = clip_loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale)["loss"]
    loss.backward()
    return {"loss": loss.detach(), "image_grad": img.grad, "text_grad": txt.grad}


def test_distributed_clip_loss_equals_global_batch():
    world, n, d = 2, 8, 6
    image, text, scale = torch.randn(n, d), torch.randn(n, d), torch.tensor(12.0)
    results = run_distributed(_clip_shard, world, image, text, scale)

    img = image.clone().requires_grad_(True)
    txt = text.clone().requires_grad_(True)
    reference = clip_loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale)["loss"]
    reference.backward()

    # DDP averages over ranks: the mean of local losses is the global loss, and each rank's input
    # gradient (which sums every rank's loss through the gather) divided by world is the global one.
    assert torch.allclose(torch.stack([r["loss"] for r in results]).mean(), reference, atol=1e-6)
    image_grad = torch.cat([r["image_grad"] for r in results]) / world
    text_grad = torch.cat([r["text_grad"] for r in results]) / world
    assert torch.allclose(image_grad, img.grad, atol=1e-6)
    assert torch.allclose(text_grad, txt.grad, atol=1e-6)


def _aclip_kept(rank, world, crops, boxes):
    from synclip.models.factory import create_model
    from synclip.recipe import Recipe

    torch.manual_seed(0)  # every rank builds the same model, hence the same EMA teacher
    small = {"simclr_mlp_dim": 16, "simclr_dim": 8, "byol_mlp_dim": 16, "byol_dim": 8, "block": 1}
    aclip = Recipe(create_model("micro-vit-32"), {"aclip": small}).objectives["aclip"]
    b = crops.shape[0] // world
    mine = slice(rank * b, (rank + 1) * b)
    whole = aclip.keep_indices(aclip._teacher(crops[:, 2])[0], boxes)  # every rank: the whole batch
    shard = aclip.keep_indices(aclip._teacher(crops[mine, 2])[0], boxes[mine])  # its own samples
    return {"whole": whole, "shard": shard}


def test_aclip_keeps_the_same_patches_of_a_sample_on_every_rank():
    torch.manual_seed(3)
    crops = torch.randn(6, 3, 3, 32, 32)
    boxes = torch.tensor([[0.1, 0.0, 0.8, 0.9], [0.0, 0.25, 1.0, 0.75]]).repeat(6, 1, 1)
    results = run_distributed(_aclip_kept, 2, crops, boxes)
    assert results[0]["whole"].shape == (6, 2, 8)  # half of 4 x 4 patches per online crop
    assert torch.equal(results[0]["whole"], results[1]["whole"])
    assert torch.equal(torch.cat([r["shard"] for r in results]), results[0]["whole"])


def _center_shard(rank, world, logits):
    from synclip.models import create_model
    from synclip.objectives.self_distill import SelfDistill

    torch.manual_seed(0)  # every rank builds the same model, as a seeded run does
    objective = SelfDistill(
        create_model("micro-vit-32"), prototypes=logits.shape[-1], hidden_dim=16, bottleneck_dim=8
    )
    b = logits.shape[0] // world
    objective._update_center(logits[rank * b : (rank + 1) * b])  # (b, G, K) of this rank
    return {"center": objective.center, "teacher": objective.teacher.module.image_head.mlp[0].weight}


def test_self_distill_centre_is_the_global_batch_mean_on_every_rank():
    logits = torch.randn(8, 2, 12)  # (B, G, K) teacher outputs of the global batch
    results = run_distributed(_center_shard, 2, logits)
    expected = 0.1 * logits.flatten(0, 1).mean(0, keepdim=True)  # 0.9 * 0 + 0.1 * global mean
    for r in results:
        assert torch.allclose(r["center"], expected, atol=1e-6)
    assert torch.equal(results[0]["teacher"], results[1]["teacher"])  # the same teacher on every rank
