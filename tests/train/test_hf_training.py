"""Training from a local Hugging Face dataset, streamed or map-style, and evaluating on one."""

import json

import pytest

pytest.importorskip("datasets")

from hf_helpers import write_imagefolder, write_parquet  # noqa: E402
from run_helpers import small_run_overrides  # noqa: E402
from synclip.cli import main  # noqa: E402
from synclip.io.checkpoint import read_synclip_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def test_clip_trains_on_streamed_labelled_images_and_evaluates_on_a_parquet_dataset(tmp_path):
    """Class folders without captions stream into `clip` as prompted class names (the text_prompt
    path of image folders); the end-of-run evaluation reads eval.hf_dataset."""
    folder = write_imagefolder(tmp_path / "labelled", captions=False)
    parquet = write_parquet(tmp_path / "parquet")
    source = (
        "{pairs: {kind: hf_dataset, data_dir: '" + str(folder) + "', streaming: true, caption_key: null, "
        "label_key: label, shuffle_buffer: 8}}"
    )
    overrides = small_run_overrides(
        "unused.tsv",
        tmp_path / "runs",
        **{
            "data.sources": source,
            "train.batch_size": 8,
            "train.max_steps": 3,
            "train.name": "hf",
            "eval.at_end": "true",
            "eval.hf_dataset": str(parquet),
            "eval.hf_options": "{format: parquet}",
        },
    )
    assert main(["train", "clip", *overrides]) == 0
    run = tmp_path / "runs" / "hf"
    assert read_synclip_checkpoint(run / "checkpoint.pt")["step"] == 3
    result = json.loads((run / "eval.json").read_text())
    assert {"hf_dataset", "retrieval/hf_dataset"} <= set(result["tasks"])
    assert result["settings"]["hf_options"] == {"format": "parquet"}


def test_map_style_source_with_a_missing_column_fails_before_training(tmp_path, capsys):
    parquet = write_parquet(tmp_path / "parquet")
    source = "{pairs: {kind: hf_dataset, data_dir: '" + str(parquet) + "', caption_key: caption}}"
    overrides = small_run_overrides("unused.tsv", tmp_path / "runs", **{"data.sources": source})
    assert main(["train", "clip", *overrides]) != 0
    err = capsys.readouterr().err
    assert "no column 'caption' (caption_key)" in err and "'text'" in err


@pytest.mark.slow
def test_resume_mid_epoch_from_a_streamed_dataset_equals_an_uninterrupted_run(tmp_path):
    import torch

    from synclip.config import load_config
    from synclip.train.loop import train

    parquet = write_parquet(tmp_path / "parquet")
    source = (
        "{pairs: {kind: hf_dataset, data_dir: '" + str(parquet) + "', streaming: true, shuffle_buffer: 8}}"
    )
    base = small_run_overrides(
        "unused.tsv", tmp_path / "runs", **{"data.sources": source, "train.batch_size": 4, "train.epochs": 1}
    )
    straight = train(load_config("clip", [*base, "train.name=straight"]))
    resumed_args = [*base, "train.name=resumed", "train.checkpoint_every=3"]
    train(load_config("clip", [*resumed_args, "train.max_steps=3"]))
    resumed = train(load_config("clip", [*resumed_args, "train.resume=auto"]))
    a = read_synclip_checkpoint(straight / "checkpoint.pt")
    b = read_synclip_checkpoint(resumed / "checkpoint.pt")
    assert a["step"] == b["step"] == 6  # 24 rows counted from the stream, batches of 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
