"""A streaming Hugging Face dataset read per rank and DataLoader worker, like webdataset shards.

``datasets.IterableDataset`` reads its data files ("shards": parquet/arrow files, or the image files
of an ``imagefolder``) in order. :class:`HFStream` deals them to the ``world * workers`` readers
deterministically from (seed, epoch, pass), with :class:`synclip.data.streams.SampleStream` doing the
shuffle buffer, the resume skip and the per-sample seeds, so a streamed source behaves as a webdataset
source does:

- with at least as many files as readers, the file order is shuffled with (seed, epoch, pass) and
  dealt round-robin (each reader opens only its files, as ``datasets.distributed.split_dataset_by_node``
  does when the files divide evenly);
- with fewer files than readers, every reader reads every file in that order and keeps every
  ``readers``-th row (rows of the others are skipped with their images undecoded);

so one pass over all readers yields each row exactly once. Rows are read with ``IterableDataset.iter``,
which leaves the worker split to us (iterating the dataset itself inside a DataLoader worker would
split it again by worker).

Each sample's seed is drawn from its position (file, row), so two rows that name the same image file
still get their own augmentation.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from synclip.data.sources.hf_dataset import ROW_BLOCK, HFRows
from synclip.data.streams import SampleStream


class HFStream(SampleStream):
    """Samples (views applied) of a ``datasets.IterableDataset`` for this rank and worker."""

    def __init__(
        self,
        dataset,
        rows: HFRows,
        views,
        seed: int = 0,
        shuffle_buffer: int = 256,
        passes: int | None = None,
    ):
        super().__init__(views, seed, shuffle_buffer, passes)
        self.dataset, self.rows = dataset, rows
        self.num_files = max(1, dataset.num_shards)

    def by_file(self, readers: int) -> bool:
        """Whether readers split the files (else they split the rows of every file)."""
        return self.num_files >= readers

    def _pass(self, reader: int, readers: int, p: int) -> Iterator[tuple[int, int, dict]]:
        order = list(range(self.num_files))
        random.Random(f"{self.seed}/{self.epoch}/{p}").shuffle(order)
        by_file = self.by_file(readers)
        seen = 0
        for f in order[reader::readers] if by_file else order:
            part = (
                self.dataset
                if self.num_files == 1
                else self.dataset.shard(self.num_files, f, contiguous=True)
            )
            row = 0
            for block in part.iter(batch_size=ROW_BLOCK):  # {column: [values]}
                for values in zip(*block.values()):
                    if by_file or seen % readers == reader:
                        yield f, row, dict(zip(block, values))
                    seen, row = seen + 1, row + 1

    def _decode(self, record: tuple[int, int, dict]) -> dict:
        f, row, values = record
        return self.rows.sample(values, self.rows.image_key(values) or f"file{f}/row{row}")

    def _sample_id(self, record: tuple[int, int, dict], sample: dict) -> str:
        return f"{record[0]}/{record[1]}"


def count_rows(dataset, rows: HFRows) -> int:
    """The number of rows of a stream, counted by reading one column that is not the image."""
    column = rows.caption_key or rows.label_key
    return sum(len(block[column]) for block in dataset.select_columns([column]).iter(batch_size=1024))
