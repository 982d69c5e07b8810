"""The real emoji corpus (built once into the cache) and the build's caching and atomicity (on a subset)."""

from __future__ import annotations

import csv
import json
import time

import pytest
from PIL import Image

import synclip.data.emoji as emoji_build
from synclip.data import CsvImageText, build_emoji_corpus

CATEGORIES = {
    "People & Body", "Flags", "Objects", "Travel & Places", "Symbols", "Smileys & Emotion",
    "Animals & Nature", "Food & Drink", "Activities", "Component",
}  # fmt: skip
COLUMNS = ["filepath", "caption", "category", "subcategory", "style", "codepoints"]


def read_tsv(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_corpus_counts_and_columns(emoji_corpus):
    info = json.loads((emoji_corpus / "build.json").read_text())
    assert info["format"] == emoji_build.FORMAT_VERSION and info["size"] == 64
    tw, om, both = (read_tsv(emoji_corpus / f"{n}.tsv") for n in ("twemoji", "openmoji", "emoji"))
    assert 3900 <= len(tw) <= 4009 and 3900 <= len(om) <= len(tw)
    assert len(both) == len(tw) + len(om)
    assert info["counts"] == {"twemoji": len(tw), "openmoji": len(om)}
    assert info["skipped"]["twemoji_no_caption"] == 4009 - len(tw)
    with (emoji_corpus / "emoji.tsv").open() as f:
        assert f.readline().rstrip("\n").split("\t") == COLUMNS
    assert {r["style"] for r in tw} == {"twemoji"} and {r["style"] for r in om} == {"openmoji"}
    assert len({r["codepoints"] for r in tw}) == len(tw)


def test_corpus_captions_and_categories_are_real(emoji_corpus):
    tw = {r["codepoints"]: r for r in read_tsv(emoji_corpus / "twemoji.tsv")}
    om = read_tsv(emoji_corpus / "openmoji.tsv")
    assert tw["1f600"]["caption"] == "grinning face"
    assert tw["1f600"]["category"] == "Smileys & Emotion"
    assert tw["1f44d-1f3fd"]["caption"] == "thumbs up medium skin tone"
    assert tw["1f44d-1f3fd"]["category"] == "People & Body"
    assert all(
        r["caption"].strip() and ":" not in r["caption"][:1] and "_" not in r["caption"] for r in tw.values()
    )
    for row in om:  # held-out style: same code points, same caption
        assert tw[row["codepoints"]]["caption"] == row["caption"]
    categories = {r["category"] for r in tw.values()}
    assert categories - {""} == CATEGORIES
    assert sum(1 for r in tw.values() if not r["category"]) < 50  # only emoji newer than the table


def test_every_corpus_image_decodes_to_rgb_on_white(emoji_corpus):
    for row in read_tsv(emoji_corpus / "emoji.tsv"):
        with Image.open(emoji_corpus / row["filepath"]) as img:
            img.load()
            assert img.mode == "RGB" and img.size == (64, 64), row["filepath"]
    for style in ("twemoji", "openmoji"):
        corner = Image.open(emoji_corpus / style / "1f600.png").getpixel((0, 0))
        assert corner == (255, 255, 255), style


def test_corpus_tsv_reads_as_a_source(emoji_corpus):
    source = CsvImageText(
        emoji_corpus / "openmoji.tsv", caption_key="caption", extra_keys=("codepoints", "category")
    )
    sample = source[0]
    assert sample["image"].size == (64, 64) and sample["caption"] and sample["codepoints"]


def test_second_call_is_cached(emoji_corpus):
    start = time.perf_counter()
    assert build_emoji_corpus() == emoji_corpus
    assert time.perf_counter() - start < 1.0


def test_subset_build_is_idempotent_and_forced_rebuild_replaces(tmp_path):
    out = build_emoji_corpus(tmp_path, size=24, limit=12)
    assert out == tmp_path / "emoji"
    info = json.loads((out / "build.json").read_text())
    assert info["limit"] == 12 and info["size"] == 24
    rows = read_tsv(out / "emoji.tsv")
    assert 0 < info["counts"]["twemoji"] <= 12 and len(rows) == sum(info["counts"].values())
    assert Image.open(out / rows[0]["filepath"]).size == (24, 24)
    marker_time = (out / "build.json").stat().st_mtime_ns
    assert build_emoji_corpus(tmp_path, size=24, limit=12) == out
    assert (out / "build.json").stat().st_mtime_ns == marker_time  # untouched
    build_emoji_corpus(tmp_path, size=24, limit=12, force=True)
    assert (out / "build.json").stat().st_mtime_ns != marker_time
    build_emoji_corpus(tmp_path, size=16, limit=12)  # another size: rebuilt in place
    assert Image.open(out / rows[0]["filepath"]).size == (16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji"]  # no temporary or old folders left


def test_interrupted_build_leaves_no_half_corpus(tmp_path, monkeypatch):
    build_emoji_corpus(tmp_path, size=16, limit=6)
    before = (tmp_path / "emoji" / "emoji.tsv").read_text()

    def explode(path, rows):
        raise KeyboardInterrupt  # as if the user hit Ctrl-C half way

    monkeypatch.setattr(emoji_build, "_write_tsv", explode)
    with pytest.raises(KeyboardInterrupt):
        build_emoji_corpus(tmp_path, size=16, limit=6, force=True)
    assert (tmp_path / "emoji" / "emoji.tsv").read_text() == before  # the old corpus survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji"]

    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        build_emoji_corpus(fresh, size=16, limit=6)
    assert not (fresh / "emoji").exists() and list(fresh.iterdir()) == []
