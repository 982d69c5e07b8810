import pytest
import torch
from PIL import Image

from synclip.eval.features import encode_images, encode_texts


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (40, 40), (20 * i % 256, 100, 255 - 20 * i % 256)) for i in range(n)]


class _Dicts:
    """A map-style dataset of dict items, like synclip.data's labelled sources."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": i}


def test_encode_images_from_lists_and_datasets_agree(clip_model, preprocess):
    images = _images(7)
    from_list = encode_images(clip_model, images, preprocess, "cpu", batch_size=3)
    assert from_list.shape == (7, 32) and from_list.dtype == torch.float32
    assert torch.allclose(from_list.norm(dim=-1), torch.ones(7), atol=1e-5)
    from_dicts = encode_images(clip_model, _Dicts(images), preprocess, "cpu", batch_size=4)
    from_tuples = encode_images(clip_model, [(im, 0) for im in images], preprocess, "cpu", batch_size=7)
    assert torch.allclose(from_list, from_dicts, atol=1e-5) and torch.allclose(
        from_list, from_tuples, atol=1e-5
    )


def test_encode_texts_is_batched_and_normalised(clip_model, tokenize):
    texts = ["cat", "dog", "grinning face", "flag", "heart"]
    whole = encode_texts(clip_model, tokenize, texts, "cpu", batch_size=256)
    batched = encode_texts(clip_model, tokenize, texts, "cpu", batch_size=2)
    assert whole.shape == (5, 32) and torch.allclose(whole, batched, atol=1e-5)
    assert torch.allclose(whole.norm(dim=-1), torch.ones(5), atol=1e-5)


def test_train_mode_is_restored_even_after_an_error(clip_model, preprocess, tokenize):
    clip_model.train()
    try:
        encode_texts(clip_model, tokenize, ["a"], "cpu")
        assert clip_model.training
        with pytest.raises(TypeError):
            encode_images(clip_model, [object()], preprocess, "cpu")
        assert clip_model.training
    finally:
        clip_model.eval()
    encode_texts(clip_model, tokenize, ["a"], "cpu")
    assert not clip_model.training


def test_no_gradients_are_recorded(clip_model, preprocess):
    features = encode_images(clip_model, _images(2), preprocess, "cpu")
    assert not features.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_encode_on_cuda_returns_cpu_features(clip_model, preprocess, tokenize):
    model = clip_model.to("cuda")
    try:
        cpu = encode_texts(clip_model.cpu(), tokenize, ["cat"], "cpu")
        cuda = encode_texts(model.to("cuda"), tokenize, ["cat"], "cuda")
        assert cuda.device.type == "cpu" and torch.allclose(cpu, cuda, atol=1e-3)
        assert encode_images(model, _images(3), preprocess, "cuda").device.type == "cpu"
    finally:
        clip_model.cpu()
