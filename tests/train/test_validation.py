"""Periodic validation on the user's data, eval results in metrics.jsonl and TensorBoard, epoch_N
checkpoints, and evaluation-data mistakes caught before the first training step (issue 18, part 1)."""

import json
from pathlib import Path

import pytest

from run_helpers import small_run_overrides, write_subset
from synclip.cli import main
from synclip.config import ConfigError, load_config
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.train.loop import train


def write_held_out(corpus: Path, out: Path, start: int = 256, n: int = 48) -> Path:
    """A TSV of Twemoji pairs the training subset (the first 256) does not hold."""
    return write_subset(corpus, out, n, start)


@pytest.fixture(scope="module")
def held_out(emoji_corpus, tmp_path_factory):
    return write_held_out(emoji_corpus, tmp_path_factory.mktemp("held_out") / "val.tsv")


def _tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.mark.slow
def test_train_validates_on_own_csv_logs_curves_and_keeps_epoch_checkpoints(emoji_corpus, held_out, tmp_path):
    pairs = write_subset(emoji_corpus, tmp_path / "train64.tsv", 64)
    overrides = small_run_overrides(
        pairs,
        tmp_path,
        **{
            "train.epochs": 3,  # 2 steps per epoch
            "train.name": "run",
            "train.save_every": 1,
            "train.keep_last": 2,
            "eval.at_end": "true",
            "eval.csv": str(held_out),
            "eval.csv_keys": "[filepath, caption]",  # the emoji TSV's caption column
            "eval.limit": 16,
            "eval.every_steps": 3,
            "eval.every_epochs": 2,
        },
    )
    assert main(["train", "clip", *overrides]) == 0
    run_dir = tmp_path / "run"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    key = "val/retrieval/csv/text_to_image_R@1"
    val_steps = [r["step"] for r in rows if key in r]
    assert val_steps == [3, 4, 6]  # every 3 steps, and the end of epoch 2 (step 4)
    assert all(0 <= r[key] <= 1 for r in rows if key in r)
    final = [r for r in rows if "eval/retrieval/csv/text_to_image_R@1" in r]  # the end-of-run eval
    assert [r["step"] for r in final] == [6]
    tags = _tags(run_dir)
    assert {key, "eval/retrieval/csv/image_to_text_R@5", "train/loss"} <= tags
    assert "retrieval/csv" in json.loads((run_dir / "eval.json").read_text())["tasks"]
    # epoch_N.pt beside the resumable checkpoint.pt, the oldest beyond keep_last deleted
    assert sorted(p.name for p in run_dir.glob("epoch_*.pt")) == ["epoch_2.pt", "epoch_3.pt"]
    assert read_synclip_checkpoint(run_dir / "epoch_2.pt")["step"] == 4
    last = read_synclip_checkpoint(run_dir / "epoch_3.pt")
    assert last["step"] == 6 and last["finished"]
    assert (run_dir / "plots" / "training_curves.png").stat().st_size > 1000


def test_periodic_eval_data_mistake_fails_before_the_first_step(emoji_subset, tmp_path):
    missing = tmp_path / "nope.csv"
    cfg = load_config(
        "clip",
        small_run_overrides(
            emoji_subset, tmp_path, **{"train.name": "r", "eval.every_steps": 2, "eval.csv": str(missing)}
        ),
    )
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        train(cfg)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_end_of_run_eval_mistake_fails_before_training(emoji_subset, tmp_path, capsys, monkeypatch):
    def no_training(cfg):
        raise AssertionError("trained before checking the eval data")

    monkeypatch.setattr("synclip.train.loop.train", no_training)
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"eval.at_end": "true", "eval.tasks": "[csv]"})
    assert main(["train", "clip", *overrides]) != 0
    assert "needs --csv" in capsys.readouterr().err
    bad_column = small_run_overrides(
        emoji_subset,
        tmp_path,
        **{"eval.at_end": "true", "eval.csv": str(emoji_subset), "eval.csv_keys": "[filepath, title]"},
    )
    assert main(["train", "clip", *bad_column]) != 0
    assert "title" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.save_every=0", "train.save_every"),
        ("train.keep_last=0", "train.keep_last"),
        ("eval.every_steps=0", "eval.every_steps"),
        ("eval.csv_keys=[filepath]", "eval.csv_keys"),
    ],
)
def test_bad_validation_and_checkpoint_settings_fail_when_loaded(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("clip", [override])
