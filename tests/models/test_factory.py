import open_clip
import pytest
import torch

from synclip.io.checkpoint import CheckpointError, read_checkpoint, save_atomic
from synclip.models import create_model, list_models, load_state, open_clip_state_dict


def test_outputs_have_documented_shapes():
    model = create_model("micro-vit-32").eval()
    image, text = torch.randn(3, 3, 32, 32), torch.randint(0, 49408, (3, 16))
    img = model.image_outputs(image)
    txt = model.text_outputs(text)
    assert (
        img["embed"].shape == (3, 64)
        and img["pooled"].shape == (3, 64)
        and img["tokens"].shape == (3, 16, 64)
    )
    assert (
        txt["embed"].shape == (3, 64)
        and txt["pooled"].shape == (3, 64)
        and txt["tokens"].shape == (3, 16, 64)
    )
    assert torch.allclose(model.encode_image(image, normalize=True).norm(dim=-1), torch.ones(3))
    assert not hasattr(model, "logit_scale")  # temperatures belong to objectives


@pytest.mark.parametrize("name", ["micro-vit-32", "tiny-vit-48"])
def test_weights_load_into_open_clip_with_identical_embeddings(name, tmp_path):
    model = create_model(name).eval()
    path = save_atomic(
        {"state_dict": open_clip_state_dict(model, {"logit_scale": torch.tensor(3.0)})}, tmp_path / "w.pt"
    )
    reference = open_clip.create_model(name, pretrained=str(path)).eval()
    assert reference.logit_scale.item() == pytest.approx(3.0)
    size = model.image_size
    image, text = (
        torch.randn(2, 3, size, size),
        open_clip.tokenize(["a cat face", "flag: france"], context_length=model.context_length),
    )
    with torch.no_grad():
        assert torch.allclose(model.encode_image(image), reference.encode_image(image), atol=1e-5)
        assert torch.allclose(model.encode_text(text), reference.encode_text(text), atol=1e-5)


def test_standard_architecture_keeps_open_clip_layout():
    ours = set(open_clip_state_dict(create_model("ViT-B-32")))
    theirs = set(open_clip.create_model("ViT-B-32").state_dict())
    assert ours == theirs


def test_list_models_has_small_and_open_clip_names():
    names = list_models()
    # synclip's configs, first and sorted (the -avg ones pool by averaging tokens, FLIP's pooling;
    # coca-* have open_clip's CoCa towers)
    small = ["coca-micro-vit-32", "coca-tiny-vit-48", "effnet-lite0-minilm", "effnet-lite0-text"]
    small += ["micro-vit-32", "micro-vit-32-avg", "tiny-vit-48", "tiny-vit-48-avg"]
    assert names[: len(small)] == small and "ViT-B-32" in names and "RN50" in names


def test_unknown_model_name_lists_choices():
    with pytest.raises(ValueError, match="micro-vit-32"):
        create_model("ViT-Z-99")


def test_weights_of_another_architecture_are_rejected():
    tiny = open_clip_state_dict(create_model("tiny-vit-48"))
    with pytest.raises(ValueError, match="do not fit architecture 'micro-vit-32'"):
        load_state(create_model("micro-vit-32"), tiny)


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    path = save_atomic({"state_dict": open_clip_state_dict(create_model("micro-vit-32"))}, tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
