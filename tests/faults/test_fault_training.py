"""Training on bad input: short batches are skipped, an all-bad source stops with examples."""

import pytest

from synclip.config import load_config
from synclip.train.loop import TooManyBadSamples, _count_bad, train


def _batch(size, n_bad):
    return {
        "pairs": {"size": size, "n_items": size + n_bad, "n_bad": n_bad, "bad": [("x.png", "missing_file")]}
    }


def test_a_short_batch_is_reported_so_the_step_is_skipped():
    bad = {"n_bad": 0, "n_items": 0, "examples": []}
    assert _count_bad(_batch(3, 1), bad, 1.0, 10_000, {"pairs": 4}) is True
    assert _count_bad(_batch(4, 0), bad, 1.0, 10_000, {"pairs": 4}) is False
    assert bad["n_bad"] == 1 and bad["n_items"] == 8 and bad["examples"] == ["x.png: missing_file"] * 2


def test_every_image_missing_stops_with_named_examples_not_a_key_error(tmp_path, run_args):
    csv = tmp_path / "missing.csv"
    csv.write_text("filepath\tcaption\n" + "".join(f"/nope/{i}.png\ta cat {i}\n" for i in range(64)))
    cfg = load_config("clip", run_args(csv))
    with pytest.raises(
        TooManyBadSamples, match=r"64 of 64 samples could not be used.*/nope/\d+\.png: missing_file"
    ):
        train(cfg)
    assert not (tmp_path / "runs" / "clip-s0" / "checkpoint.pt").exists()
