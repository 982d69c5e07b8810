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


@pytest.fixture(scope="session")
def untrained_checkpoint():
    """A function writing a synclip checkpoint of a freshly initialised micro-vit-32 to a path."""
    from synclip.config import load_config
    from synclip.io.checkpoint import FORMAT, save_atomic
    from synclip.models import create_model, open_clip_state_dict

    def write(path):
        cfg = load_config("clip", ["model.name=micro-vit-32"])
        model = create_model("micro-vit-32")
        state = {
            "format": FORMAT,
            "model_name": "micro-vit-32",
            "model": open_clip_state_dict(model),
            "config": cfg.to_dict(),
            "step": 0,
        }
        return save_atomic(state, path)

    return write


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of many tiny forward/backward passes (training, fine-tuning): with
    a second thread they wait on each other, and on any other load of the machine, far longer than
    they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
