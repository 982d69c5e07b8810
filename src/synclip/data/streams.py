"""What every streamed source shares: which reader am I, a seeded shuffle buffer, resume, per-sample seeds.

A stream is read by ``world * workers`` readers (rank r, DataLoader worker w). A subclass says which
records one reader reads in pass ``p`` of an epoch (:meth:`SampleStream._pass`, deterministic from
(seed, epoch, p)) and how a record becomes a sample (:meth:`SampleStream._decode`, raising
:class:`~synclip.data.images.BadSample`); this class shuffles the records through a buffer seeded by
(seed, epoch, p, reader), skips the samples a reader already produced before a resume, seeds Python's
and torch's RNG per sample from (seed, epoch, p, sample id) so augmentations do not depend on the
number of workers, applies the views and reports dropped bad records. Used by webdataset shards
(:class:`synclip.data.shards.ShardStream`) and Hugging Face streaming datasets
(:class:`synclip.data.hf_stream.HFStream`).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from synclip import distributed as dist
from synclip.data.images import BadSample


class SampleStream(IterableDataset):
    """Samples (views applied) of a stream for this rank and DataLoader worker.

    Each yielded item is ``{view: value, "key": id}``; bad records are dropped and reported on the next
    good item as ``"__dropped__": [(key, reason)]``. ``passes=None`` streams forever (training: pass p
    of an epoch reshuffles with (seed, epoch, p)); ``passes=1`` reads this reader's records once.
    """

    def __init__(
        self,
        views: Callable[[dict], dict],
        seed: int = 0,
        shuffle_buffer: int = 256,
        passes: int | None = None,
    ):
        self.views, self.seed = views, seed
        self.shuffle_buffer, self.passes = shuffle_buffer, passes
        self.epoch, self.skip = 0, 0  # skip: samples each reader already produced this epoch
        self.shift = 0  # DataLoader worker i reads as worker (i + shift) % workers
        self.rank, self.world = dist.rank(), dist.world_size()

    def set_epoch(self, epoch: int, skip: int | list[int] = 0, shift: int = 0) -> None:
        """Start epoch ``epoch``; ``skip[w]`` samples of worker w were already used; see ``shift``."""
        self.epoch, self.skip, self.shift = epoch, skip, shift

    def _reader(self) -> tuple[int, int, int]:
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        wid = (wid + self.shift) % nworkers  # the worker whose turn it is comes first after a resume
        return self.rank * nworkers + wid, self.world * nworkers, wid

    def _pass(self, reader: int, readers: int, p: int) -> Iterator:
        """The raw records reader ``reader`` of ``readers`` reads in pass ``p`` of this epoch, in order."""
        raise NotImplementedError

    def _decode(self, record) -> dict:
        """A raw record -> a source sample ``{"image", "key", ...}``; raises BadSample."""
        raise NotImplementedError

    def _sample_id(self, record, sample: dict) -> str:
        """The text a sample's augmentation seed is drawn from: unique within an epoch's pass."""
        return sample["key"]

    def _raw(self, reader: int, readers: int) -> Iterator[tuple[object, int]]:
        passes = range(self.passes) if self.passes is not None else iter(int, 1)  # endless
        for p, _ in enumerate(passes):
            rng = random.Random(f"{self.seed}/{self.epoch}/{p}/{reader}/buffer")
            buffer: list = []
            for record in self._pass(reader, readers, p):
                buffer.append(record)
                if len(buffer) >= self.shuffle_buffer:
                    yield buffer.pop(rng.randrange(len(buffer))), p
            rng.shuffle(buffer)
            for record in buffer:
                yield record, p

    def __iter__(self) -> Iterator[dict]:
        reader, readers, wid = self._reader()
        skip = self.skip[wid] if isinstance(self.skip, list) else self.skip
        dropped: list[tuple[str, str]] = []
        for record, p in self._raw(reader, readers):
            try:
                sample = self._decode(record)
            except BadSample as err:
                if skip <= 0:
                    dropped.append((err.key, err.reason))
                continue
            if skip > 0:  # already trained on before the resume: decoded only to know it was good
                skip -= 1
                continue
            seed = zlib.crc32(f"{self.seed}/{self.epoch}/{p}/{self._sample_id(record, sample)}".encode())
            random.seed(seed)
            torch.manual_seed(seed)
            item = {**self.views(sample), "key": sample["key"]}
            if dropped:
                item["__dropped__"], dropped = dropped, []
            yield item
