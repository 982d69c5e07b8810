"""Published weights wherever a checkpoint goes (issue 18, finding 2): open_clip pretrained tags through
open_clip's own loader and a cache laid out here (offline), OpenAI TorchScript archives through
``open_clip.load_openai_model``, the file's logit_scale / logit_bias kept, normalisation from the tower."""

from __future__ import annotations

import json
import math

import open_clip
import pytest
import torch
from PIL import Image
from torch import nn

ARCH = "tiny-openai-test"  # OpenAI's layout rules: head width 64, QuickGELU
CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}
TAG_MEAN, TAG_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An open_clip model of ARCH with logit_scale log(42), its weights file and a TorchScript archive."""
    folder = tmp_path_factory.mktemp("published")
    (folder / f"{ARCH}.json").write_text(json.dumps(CONFIG))
    open_clip.add_model_config(folder / f"{ARCH}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH).eval()
    with torch.no_grad():
        for param in model.parameters():  # OpenAI's archives hold fp16 weights; open_clip casts them so
            param.copy_(param.half().float())
        model.logit_scale.fill_(math.log(42.0))
    weights = folder / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), weights)
    archive = folder / "ViT-tiny.pt"
    torch.jit.script(_scriptable(model.state_dict())).save(str(archive))
    return model, weights, archive


class _Tree(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _scriptable(state: dict) -> nn.Module:
    """A TorchScript-able module whose state dict is ``state`` (OpenAI's archives are scripted CLIPs;
    open_clip reads only their state dict) plus the ints OpenAI keeps beside it."""
    root = _Tree()
    for key, value in state.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, _Tree())
            node = getattr(node, part)
        node.register_parameter(leaf, nn.Parameter(value.detach().clone(), requires_grad=False))
    root.register_buffer("input_resolution", torch.tensor(32))
    return root


@pytest.fixture
def tag_in_cache(reference, tmp_path, monkeypatch):
    """open_clip:ARCH:tinytag, resolved by open_clip from a Hugging Face cache laid out here, offline."""
    import huggingface_hub.constants
    from open_clip import pretrained

    _, weights, _ = reference
    tag = pretrained._pcfg(hf_hub="synclip-test/tiny/", quick_gelu=True, mean=TAG_MEAN, std=TAG_STD)
    monkeypatch.setitem(pretrained._PRETRAINED, ARCH, {"tinytag": tag})
    repo = tmp_path / "cache" / "models--synclip-test--tiny"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / "open_clip_pytorch_model.bin").write_bytes(weights.read_bytes())
    monkeypatch.setenv("SYNCLIP_WEIGHTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return f"open_clip:{ARCH}:tinytag"


def _same_towers(model, reference):
    images, texts = torch.rand(2, 3, 32, 32), torch.randint(0, 49408, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model.encode_image(images), reference.encode_image(images), atol=1e-5)
        assert torch.allclose(model.encode_text(texts), reference.encode_text(texts), atol=1e-5)


def test_torchscript_archive_loads_through_open_clip_with_its_logit_scale(reference):
    from synclip import load
    from synclip.io.checkpoint import CheckpointError, read_checkpoint

    ref, _, archive = reference
    with pytest.raises(CheckpointError, match=f"TorchScript archive .* open_clip:<architecture>:{archive}"):
        read_checkpoint(archive)  # no longer "truncated ... use an earlier checkpoint"
    model = load(f"open_clip:{ARCH}:{archive}")
    assert model.name == ARCH and model.logit_scale_value == pytest.approx(42.0)
    _same_towers(model, ref)


def test_a_pretrained_tag_resolves_from_the_local_cache(reference, tag_in_cache):
    from synclip import load

    model = load(tag_in_cache)
    assert model.logit_scale_value == pytest.approx(42.0)
    assert model.preprocess.options["mean"] == TAG_MEAN and model.preprocess.options["std"] == TAG_STD
    _same_towers(model, reference[0])


def test_a_tag_missing_from_the_cache_names_the_fix(reference, tag_in_cache, tmp_path, monkeypatch):
    from synclip import load
    from synclip.io.checkpoint import CheckpointError

    monkeypatch.setenv("SYNCLIP_WEIGHTS_CACHE", str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="not in the local cache .* SYNCLIP_WEIGHTS_CACHE"):
        load(tag_in_cache)
    with pytest.raises(CheckpointError, match="neither a pretrained tag"):
        load(f"open_clip:{ARCH}:no_such_tag")


def test_training_from_published_weights_keeps_their_logit_scale_and_normalisation(reference, tag_in_cache):
    from synclip.config import load_config
    from synclip.train.setup import apply_tower_normalisation, build_pretrainer

    _, weights, archive = reference
    for recipe, spec in (("clip", tag_in_cache), ("siglip", f"open_clip:{ARCH}:{archive}")):
        cfg = load_config(recipe, [f"model.pretrained={spec}"])
        apply_tower_normalisation(cfg)
        pretrainer = build_pretrainer(cfg)
        objective = pretrainer.recipe.active()[recipe]
        assert pretrainer.model.name == ARCH
        assert objective.logit_scale.exp().item() == pytest.approx(42.0)  # was reset to 1/0.07
        expected = TAG_MEAN if spec == tag_in_cache else open_clip.OPENAI_DATASET_MEAN
        assert tuple(cfg.views["image"]["mean"]) == pytest.approx(expected)
    assert objective.logit_bias.item() == pytest.approx(-10.0)  # the archive has none: siglip's own start
    with_bias = weights.parent / "siglip_weights.bin"
    torch.save({"state_dict": {**torch.load(weights), "logit_bias": torch.tensor([-3.0])}}, with_bias)
    pretrainer = build_pretrainer(load_config("siglip", [f"model.pretrained=open_clip:{ARCH}:{with_bias}"]))
    assert pretrainer.recipe.active()["siglip"].logit_bias.item() == pytest.approx(-3.0)


def test_lit_normalisation_follows_the_image_tower_loaded(tag_in_cache):
    from synclip.config import load_config
    from synclip.models.efficientnet_lite import MEAN
    from synclip.train.setup import apply_tower_normalisation

    lit = load_config("lit")
    apply_tower_normalisation(lit)
    assert tuple(lit.views["image"]["mean"]) == pytest.approx(MEAN)
    other = load_config("lit", [f"model.name={ARCH}", f"model.image_init={tag_in_cache}"])
    apply_tower_normalisation(other)
    assert tuple(other.views["image"]["mean"]) == TAG_MEAN  # not EfficientNet's
    mine = load_config("lit", [f"model.image_init={tag_in_cache}", "views.image.mean=[0.1,0.1,0.1]"])
    apply_tower_normalisation(mine)
    assert mine.views["image"]["mean"] == [0.1, 0.1, 0.1]  # said explicitly: kept


def test_image_init_and_teacher_take_published_weights(reference):
    from synclip.models import create_model
    from synclip.models.teacher import build_teacher
    from synclip.models.tower_init import init_image_tower

    ref, _, archive = reference
    spec = f"open_clip:{ARCH}:{archive}"
    model = create_model(ARCH)
    assert init_image_tower(model, spec) == "published weights"
    assert all(torch.equal(v, ref.visual.state_dict()[k]) for k, v in model.visual.state_dict().items())
    teacher = build_teacher(spec)
    assert teacher.size == 32 and teacher.dim == 32


def test_eval_and_compare_score_published_weights(reference, tmp_path):
    from synclip.evaluate import evaluate_checkpoint

    _, _, archive = reference
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGB", (8, 8), colour).save(tmp_path / f"{i}.png")
    (tmp_path / "pairs.csv").write_text("filepath\ttitle\n0.png\ta red square\n1.png\ta blue square\n")
    spec = f"open_clip:{ARCH}:{archive}"
    done = evaluate_checkpoint(
        spec, csv=tmp_path / "pairs.csv", out=tmp_path / "eval.json", cache_features=False
    )
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["checkpoint"]["path"] == spec and "retrieval/csv" in saved["tasks"] and done["table"]


def test_compare_checkpoints_take_published_weights_as_a_baseline_row(monkeypatch, tmp_path):
    import synclip.evaluate
    from synclip.compare import evaluate_existing

    seen = {}

    def fake(checkpoint, **options):
        seen.update(checkpoint=checkpoint, **options)
        return {"result": {"checkpoint": {"recipe": None}, "tasks": {}}}

    monkeypatch.setattr(synclip.evaluate, "evaluate_checkpoint", fake)
    row = evaluate_existing(f"open_clip:{ARCH}:/w/ViT-tiny.pt", None, None, tmp_path / "report")
    assert seen["checkpoint"] == f"open_clip:{ARCH}:/w/ViT-tiny.pt" and row["run_dir"] is None
    assert row["label"] == f"{ARCH}:ViT-tiny.pt" and seen["out"].parent == tmp_path / "report" / "published"
