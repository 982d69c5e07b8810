"""`synclip export` writes weights that open_clip loads and that score the same zero-shot accuracy."""

import open_clip
import pytest
import torch

from run_helpers import small_run_overrides
from synclip.api import load
from synclip.cli import main
from synclip.config import load_config
from synclip.eval.run import evaluate
from synclip.train.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained_checkpoint(one_thread, emoji_subset, tmp_path_factory):
    """micro-vit-32 trained for 8 CLIP steps on 256 real Twemoji pairs."""
    out = tmp_path_factory.mktemp("export_run")
    cfg = load_config("clip", small_run_overrides(emoji_subset, out, **{"train.epochs": 1}))
    return train(cfg) / "checkpoint.pt"


def test_exported_checkpoint_gives_the_same_zero_shot_accuracy_in_open_clip(
    trained_checkpoint, emoji_corpus, tmp_path, capsys
):
    exported = tmp_path / "open_clip.pt"
    assert main(["export", str(trained_checkpoint), str(exported)]) == 0
    assert "open_clip.create_model('micro-vit-32'" in capsys.readouterr().out

    ours = load(trained_checkpoint)
    theirs = open_clip.create_model("micro-vit-32", pretrained=str(exported)).eval()
    assert not isinstance(theirs, type(ours))  # a plain open_clip CLIP, not synclip's subclass
    tokenizer = open_clip.get_tokenizer("micro-vit-32")  # open_clip's own, from the registered config
    kwargs = dict(tasks=["head_noun", "retrieval"], corpus_dir=emoji_corpus, limit=300)
    a = evaluate(ours, ours.preprocess, ours.tokenizer, **kwargs)
    b = evaluate(theirs, ours.preprocess, tokenizer, **kwargs)

    assert (
        set(a["tasks"]) == set(b["tasks"]) == {"head_noun/twemoji", "head_noun/openmoji", "retrieval/twemoji"}
    )
    for name, entry in a["tasks"].items():
        n = entry["data"].get("n") or entry["data"]["n_texts"]
        for metric, value in entry["metrics"].items():
            if value is not None:  # the same images right: at most one image's float-rounding flip
                assert b["tasks"][name]["metrics"][metric] == pytest.approx(value, abs=1 / n + 1e-6), (
                    name,
                    metric,
                )
    assert theirs.logit_scale.exp().item() == pytest.approx(ours.logit_scale_value, rel=1e-5)

    # the embeddings themselves agree, so the equal accuracies are not a coincidence of chance-level models
    image = torch.stack([ours.preprocess(img) for img in _images(emoji_corpus)])  # (4, 3, 32, 32)
    text = tokenizer(["red heart", "cat face", "flag: france", "alarm clock"])  # (4, 16)
    with torch.no_grad():
        assert torch.allclose(ours.encode_image(image), theirs.encode_image(image), atol=1e-5)
        assert torch.allclose(ours.encode_text(text), theirs.encode_text(text), atol=1e-5)
        assert torch.equal(ours.tokenizer(["red heart"]), text[:1])


def _images(corpus):
    from PIL import Image

    paths = sorted((corpus / "twemoji").glob("*.png"))[:4]
    return [Image.open(p).convert("RGB") for p in paths]
