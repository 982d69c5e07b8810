"""Sharded streaming data: webdataset tar shards, written from any source and read per rank and worker.

A shard holds one record per sample: ``<key>.png`` (or ``.jpg``), ``<key>.txt`` (the caption, when the
source has one) and ``<key>.json`` (every other field: label, class name, category...). ``sizes.json``
beside the shards gives each shard's sample count (as open_clip's ``--train-num-samples`` needs).

Reading (:class:`ShardStream`) is deterministic from (seed, epoch): the shard list is shuffled with
that seed and dealt round-robin to the ``world * workers`` readers, so one pass over the stream of every
rank and worker returns each sample exactly once. With ``resampled=True`` every reader draws shards with
replacement instead (open_clip's ``--dataset-resampled``). ``skip`` drops samples a reader already
produced, which is how a run resumes mid-epoch (the reading machinery is :class:`SampleStream`'s).
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from synclip.data.images import BadSample, open_draft, to_rgb
from synclip.data.streams import SampleStream

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")


def expand_urls(urls: str | list[str]) -> list[str]:
    """``"dir/shard-{000000..000009}.tar"`` (brace notation, ``::`` joins lists) -> a list of paths."""
    import braceexpand

    items = urls if isinstance(urls, list) else str(urls).split("::")
    out = [u for item in items for u in braceexpand.braceexpand(item)]
    if not out:
        raise ValueError(f"no shards in {urls!r}")
    return out


def _encode_image(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG" if fmt == "png" else "JPEG", **({"quality": 95} if fmt == "jpg" else {}))
    return buf.getvalue()


def write_shards(
    source: Dataset, out: str | Path, shard_size: int = 1000, image_format: str = "png", prefix: str = "shard"
) -> dict:
    """Write every readable sample of ``source`` to ``out/<prefix>-NNNNNN.tar``; bad samples are counted.

    Returns ``{"urls": brace pattern, "num_samples", "num_shards", "n_bad", "bad"}`` (also in
    ``out/sizes.json`` and ``out/shards.json``).
    """
    import webdataset as wds

    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be png or jpg, not {image_format!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    bad: list[tuple[str, str]] = []
    writer, name, n = None, None, 0
    for index in range(len(source)):
        try:
            sample = source[index]
        except BadSample as err:
            bad.append((err.key, err.reason))
            continue
        if writer is None or sizes[name] >= shard_size:
            if writer is not None:
                writer.close()
            name = f"{prefix}-{len(sizes):06d}.tar"
            sizes[name] = 0
            writer = wds.TarWriter(str(out / name), encoder=False)
        record = {"__key__": f"{index:09d}", image_format: _encode_image(sample["image"], image_format)}
        if "caption" in sample:
            record["txt"] = sample["caption"].encode("utf-8")
        meta = {k: v for k, v in sample.items() if k not in ("image", "caption")}
        record["json"] = json.dumps(meta).encode("utf-8")
        writer.write(record)
        sizes[name] += 1
        n += 1
    if writer is not None:
        writer.close()
    if not sizes:
        raise ValueError(f"no readable samples in the source ({len(bad)} bad)")
    last = len(sizes) - 1
    info = {
        "urls": str(out / f"{prefix}-{{000000..{last:06d}}}.tar"),
        "num_samples": n,
        "num_shards": len(sizes),
        "n_bad": len(bad),
        "bad": bad[:20],
    }
    (out / "sizes.json").write_text(json.dumps(sizes, indent=2))
    (out / "shards.json").write_text(json.dumps(info, indent=2))
    return info


def decode_record(record: dict, max_caption_chars: int = 1000, draft: int | None = None) -> dict:
    """A raw webdataset record (bytes per extension) -> a source sample ``{"image", "caption", "key", ...}``.

    ``draft``: decode JPEGs at a reduced scale with both sides at least this long (:func:`open_draft`).
    """
    key = record.get("__key__", "?")
    meta = json.loads(record["json"]) if "json" in record else {}
    sample = {**meta, "key": meta.get("key", key)}
    if "txt" in record:
        caption = record["txt"].decode("utf-8").strip()
        if not caption:
            raise BadSample("empty_caption", sample["key"])
        if len(caption) > max_caption_chars:
            raise BadSample("caption_too_long", sample["key"], f"{len(caption)} chars")
        sample["caption"] = caption
    data = next((record[e] for e in IMAGE_EXTS if e in record), None)
    if data is None:
        raise BadSample("missing_file", sample["key"], "no image in the record")
    try:
        with Image.open(io.BytesIO(data)) as img:
            open_draft(img, draft)
            img.load()
            rgb = to_rgb(img)
            sample["image"] = img.copy() if rgb is img else rgb
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadSample("corrupt_image", sample["key"], f"{type(err).__name__}: {err}") from err
    return sample


def _records(path: str) -> Iterator[dict]:
    import webdataset as wds

    yield from wds.tarfile_samples(iter([{"url": path}]))


class ShardStream(SampleStream):
    """Samples (views applied) of tar shards for this rank and DataLoader worker (:class:`SampleStream`).

    The shard list is shuffled with (seed, epoch, pass) and dealt round-robin to the readers; with
    ``resampled`` every reader draws shards with replacement instead.
    """

    def __init__(
        self,
        urls: str | list[str],
        views: Callable[[dict], dict],
        seed: int = 0,
        resampled: bool = False,
        shuffle_buffer: int = 256,
        passes: int | None = None,
    ):
        super().__init__(views, seed, shuffle_buffer, passes)
        self.urls = expand_urls(urls)
        self.resampled = resampled
        self.decode_size: int | None = None  # JPEG draft decoding (the batched augmentation path sets it)

    def _shards(self, reader: int, readers: int, p: int) -> list[str]:
        rng = random.Random(f"{self.seed}/{self.epoch}/{p}" + (f"/{reader}" if self.resampled else ""))
        if self.resampled:
            return [rng.choice(self.urls) for _ in range(max(1, len(self.urls) // readers))]
        order = list(self.urls)
        rng.shuffle(order)
        mine = order[reader::readers]
        if not mine and self.passes is None:
            raise ValueError(f"{len(self.urls)} shards cannot feed {readers} readers (ranks x workers)")
        return mine

    def _pass(self, reader: int, readers: int, p: int) -> Iterator[dict]:
        for shard in self._shards(reader, readers, p):
            yield from _records(shard)

    def _decode(self, record: dict) -> dict:
        return decode_record(record, draft=self.decode_size)
