import open_clip
import pytest
import torch


def _tokenize(texts: list[str]) -> torch.Tensor:
    return open_clip.tokenize(texts, context_length=16)  # (N, 16)


@pytest.fixture(scope="session")
def clip_model():
    """A randomly initialised open_clip CLIP small enough for CPU tests: 32 px images, 16 tokens."""
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=1, head_width=32),
        text_cfg=dict(context_length=16, vocab_size=49408, width=64, heads=2, layers=1),
    )
    return model.eval()


@pytest.fixture(scope="session")
def tokenize():
    return _tokenize


@pytest.fixture(scope="session")
def preprocess():
    return open_clip.image_transform(32, is_train=False)  # PIL -> (3, 32, 32)
