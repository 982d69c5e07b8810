"""End to end on the real emoji corpus: learning, resuming, and what bad input does to a run."""

import hashlib
import json

import pytest
import torch
from PIL import Image

from run_helpers import small_run_overrides, write_subset
from synclip.config import load_config
from synclip.io.checkpoint import CheckpointError, read_synclip_checkpoint
from synclip.train.loop import NonFiniteLoss, TooManyBadSamples, train


def _fixed_batch_loss(run_dir_or_none, cfg, tsv):
    """CLIP loss of the first 64 pairs without augmentation, for a fresh or a trained model."""
    from synclip.api import load
    from synclip.data.sources import CsvImageText
    from synclip.losses import clip_loss
    from synclip.train.setup import build_pretrainer

    if run_dir_or_none is None:
        torch.manual_seed(cfg.train.seed)
        model = build_pretrainer(cfg).model.eval()
        from synclip.api import ImagePreprocess
        from synclip.data.tokenizer import get_tokenizer
        from synclip.data.views import view_defaults

        tok = get_tokenizer(model.context_length)
        pre = ImagePreprocess({**view_defaults("image"), "size": model.image_size}, tok)
        scale = torch.tensor(1 / 0.07)
    else:
        model = load(run_dir_or_none / "checkpoint.pt")
        tok, pre, scale = model.tokenizer, model.preprocess, torch.tensor(model.logit_scale_value)
    source = CsvImageText(tsv, caption_key="caption")
    samples = [source[i] for i in range(64)]
    with torch.no_grad():
        img = model.encode_image(torch.stack([pre(s["image"]) for s in samples]), normalize=True)
        txt = model.encode_text(tok([s["caption"] for s in samples]), normalize=True)
        return clip_loss(img, txt, scale)["loss"].item()


@pytest.mark.slow
def test_training_on_real_emoji_lowers_the_loss(emoji_subset, tmp_path):
    cfg = load_config("clip", small_run_overrides(emoji_subset, tmp_path, **{"train.epochs": 6}))
    before = _fixed_batch_loss(None, cfg, emoji_subset)
    run_dir = train(cfg)
    after = _fixed_batch_loss(run_dir, cfg, emoji_subset)
    assert after < before - 0.5, (before, after)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = {"loss", "clip_loss", "clip_acc", "lr", "pairs_per_s", "data_wait_frac"}
    assert rows[-1]["step"] == 48 and logged <= set(rows[-1])
    assert all(0 <= r["data_wait_frac"] <= 1 for r in rows)  # a share of each logging window
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "plots" / "training_curves.png").stat().st_size > 1000


def _weights(run_dir):
    return read_synclip_checkpoint(run_dir / "checkpoint.pt")["model"]


@pytest.mark.slow
@pytest.mark.parametrize("augment", ["pil", "batched"])
def test_resume_after_interruption_equals_uninterrupted_run(augment, emoji_subset, tmp_path):
    run = {"data.augment": augment}
    straight = train(
        load_config("clip", small_run_overrides(emoji_subset, tmp_path, **{"train.name": "straight", **run}))
    )
    overrides = small_run_overrides(
        emoji_subset, tmp_path, **{"train.name": "resumed", "train.checkpoint_every": 3, **run}
    )
    train(load_config("clip", [*overrides, "train.max_steps=5"]))  # stopped mid-epoch, after step 5
    assert read_synclip_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 5
    resumed = train(load_config("clip", [*overrides, "train.resume=auto"]))
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "metrics.jsonl repeats steps after a resume"


def test_existing_run_is_never_overwritten(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 1})
    train(load_config("clip", overrides))
    with pytest.raises(FileExistsError, match="train.resume=auto"):
        train(load_config("clip", overrides))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 2})
    run_dir = train(load_config("clip", overrides))
    before = _sha(run_dir / "checkpoint.pt")
    with pytest.raises(NonFiniteLoss, match="last good checkpoint"):
        train(
            load_config(
                "clip", [*overrides, "train.max_steps=6", "train.resume=auto", "objectives.clip.weight=.nan"]
            )
        )
    assert _sha(run_dir / "checkpoint.pt") == before


def test_checkpoint_of_another_architecture_is_a_clear_error(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 1})
    train(load_config("clip", overrides))
    with pytest.raises(CheckpointError, match="written for model 'micro-vit-32'"):
        train(load_config("clip", [*overrides, "model.name=tiny-vit-48", "train.resume=auto"]))


def _corrupt_copy(emoji_corpus, tmp_path, n_rows, n_bad):
    tsv = write_subset(emoji_corpus, tmp_path / "bad.tsv", n_rows)
    lines = tsv.read_text().splitlines()
    damaged = []
    for i in range(1, n_bad + 1):
        cells = lines[i].split("\t")
        if i % 3 == 0:
            cells[0] = str(tmp_path / f"missing{i}.png")
        elif i % 3 == 1:
            bad = tmp_path / f"corrupt{i}.png"
            bad.write_bytes(b"\x89PNG not really an image")
            cells[0] = str(bad)
        else:
            cells[1] = " "
        lines[i] = "\t".join(cells)
        damaged.append(cells[0])
    # a greyscale and an RGBA image are fine: converted, not skipped
    grey = tmp_path / "grey.png"
    Image.new("L", (40, 40), 128).save(grey)
    cells = lines[n_bad + 1].split("\t")
    cells[0] = str(grey)
    lines[n_bad + 1] = "\t".join(cells)
    tsv.write_text("\n".join(lines) + "\n")
    return tsv


def test_bad_samples_are_skipped_counted_and_stored(emoji_corpus, tmp_path):
    tsv = _corrupt_copy(emoji_corpus, tmp_path, 256, 2)
    cfg = load_config("clip", small_run_overrides(tsv, tmp_path, **{"train.epochs": 1}))
    cfg.data.max_bad_fraction = 0.05
    run_dir = train(cfg)
    quality = json.loads((run_dir / "data_quality.json").read_text())
    assert quality["n_bad"] == 2 and quality["n_items"] == 256
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["bad_samples"] == 2


def test_too_many_bad_samples_stop_with_examples(emoji_corpus, tmp_path):
    tsv = _corrupt_copy(emoji_corpus, tmp_path, 256, 30)
    with pytest.raises(TooManyBadSamples, match=r"data.max_bad_fraction=0.01.*(missing|corrupt|caption)"):
        train(load_config("clip", small_run_overrides(tsv, tmp_path)))
