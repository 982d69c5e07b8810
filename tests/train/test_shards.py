"""webdataset shards: written from a source, read back exactly once per epoch across ranks and workers."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from run_helpers import small_run_overrides
from synclip.cli import main
from synclip.config import load_config
from synclip.data.shards import ShardStream, expand_urls, write_shards
from synclip.data.sources import CsvImageText
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.train.loop import train


class KeyAndPixels:
    """Views for the round-trip test: the caption and the image as an array (picklable)."""

    def __call__(self, sample):
        return {"caption": sample["caption"], "pixels": torch.from_numpy(np.asarray(sample["image"]).copy())}


@pytest.fixture(scope="module")
def shards(emoji_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    assert (
        main(
            [
                "data",
                "shards",
                "--source",
                str(emoji_subset),
                "--out",
                str(out),
                "--shard-size",
                "20",
                "--caption-key",
                "caption",
            ]
        )
        == 0
    )
    return out


def test_cli_writes_shards_with_sizes(shards):
    info = json.loads((shards / "shards.json").read_text())
    assert info["num_samples"] == 256 and info["num_shards"] == 13
    assert len(expand_urls(info["urls"])) == 13
    assert sum(json.loads((shards / "sizes.json").read_text()).values()) == 256


def _read(urls, rank, world, workers):
    stream = ShardStream(urls, KeyAndPixels(), seed=3, passes=1)
    stream.rank, stream.world = rank, world
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    return list(loader)


def test_every_sample_exactly_once_per_epoch_across_2_ranks_x_2_workers(shards, emoji_subset):
    urls = json.loads((shards / "shards.json").read_text())["urls"]
    items = _read(urls, 0, 2, 2) + _read(urls, 1, 2, 2)
    keys = [item["key"] for item in items]
    source = CsvImageText(emoji_subset, caption_key="caption")
    assert sorted(keys) == sorted(source[i]["key"] for i in range(len(source)))  # each once
    by_key = {item["key"]: item for item in items}
    for i in (0, 100, 255):  # images and captions survive the round trip exactly (PNG)
        sample = source[i]
        assert by_key[sample["key"]]["caption"] == sample["caption"]
        assert np.array_equal(by_key[sample["key"]]["pixels"].numpy(), np.asarray(sample["image"]))


def test_order_is_deterministic_per_epoch_and_resampling_draws_shards(shards):
    urls = json.loads((shards / "shards.json").read_text())["urls"]
    a = [x["key"] for x in _read(urls, 0, 1, 0)]
    b = [x["key"] for x in _read(urls, 0, 1, 0)]
    assert a == b
    stream = ShardStream(urls, KeyAndPixels(), seed=3, passes=1)
    stream.set_epoch(1)
    assert [x["key"] for x in stream] != a
    resampled = ShardStream(urls, KeyAndPixels(), seed=3, resampled=True, passes=1)
    assert 0 < len(list(resampled)) <= 13 * 20


def test_bad_samples_in_shards_are_skipped_and_counted(tmp_path):
    from PIL import Image

    class Tiny(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {
                "image": Image.new("RGB", (8, 8), (i, 0, 0)),
                "caption": "" if i == 2 else f"c{i}",
                "key": str(i),
            }

    info = write_shards(Tiny(), tmp_path, shard_size=10)
    stream = ShardStream(info["urls"], KeyAndPixels(), passes=1)
    items = list(stream)
    assert [x["key"] for x in items] and len(items) == 3
    assert sum(len(x.get("__dropped__", [])) for x in items) == 1


@pytest.mark.slow
@pytest.mark.parametrize("augment", ["pil", "batched"])
def test_resume_mid_epoch_from_shards_equals_uninterrupted_run(augment, shards, tmp_path):
    urls = json.loads((shards / "shards.json").read_text())["urls"]
    source = "{pairs: {kind: webdataset, urls: '" + urls + "', num_samples: 256, shuffle_buffer: 64}}"
    run = {"data.sources": source, "train.epochs": 1, "data.augment": augment}
    base = small_run_overrides("unused.tsv", tmp_path, **run)
    straight = train(load_config("clip", [*base, "train.name=straight"]))
    resumed_args = [*base, "train.name=resumed", "train.checkpoint_every=3"]
    train(load_config("clip", [*resumed_args, "train.max_steps=3"]))
    resumed = train(load_config("clip", [*resumed_args, "train.resume=auto"]))
    a = read_synclip_checkpoint(straight / "checkpoint.pt")
    b = read_synclip_checkpoint(resumed / "checkpoint.pt")
    assert a["step"] == b["step"] == 8
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_stream_resume_skips_what_each_worker_produced(shards):
    """With 2 workers, resuming at batch 3 gives exactly the batches after the first 3 of the epoch."""
    from synclip.train.data import StreamLoader

    urls = json.loads((shards / "shards.json").read_text())["urls"]
    loader = StreamLoader(ShardStream(urls, KeyAndPixels(), seed=5, shuffle_buffer=16), 16, 256, workers=2)
    full = [b["key"] for b in loader.epoch_batches(1)]
    resumed = [b["key"] for b in loader.epoch_batches(1, start_batch=3)]
    assert len(full) == 16 and resumed == full[3:]
