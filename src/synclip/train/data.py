"""Training data: sources from the config, views per source, deterministic sharded sampling.

Every sample's augmentation is seeded from (run seed, epoch, index), so a run is reproducible on the
CPU whatever the number of workers, and a resumed run sees exactly the batches an uninterrupted one
would have seen (the sampler starts at the resumed step's batch).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from synclip import distributed as dist
from synclip.data.collate import collate
from synclip.data.emoji import build_emoji_corpus
from synclip.data.sources import CsvImageText, ImageFolder
from synclip.data.views import ViewDataset, make_views, resolve_view

SOURCE_KINDS = {
    "emoji": {"style": "twemoji", "root": None, "batch_size": None},
    "csv": {"path": None, "img_key": "filepath", "caption_key": "caption", "sep": None, "batch_size": None},
    "image_folder": {"root": None, "batch_size": None},
}


def build_source(name: str, spec: dict) -> Dataset:
    """A dataset of dict samples from a ``data.sources.<name>`` entry."""
    kind = spec.get("kind")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"data.sources.{name}.kind must be one of {sorted(SOURCE_KINDS)}, got {kind!r}")
    options = {k: v for k, v in spec.items() if k != "kind"}
    unknown = sorted(set(options) - set(SOURCE_KINDS[kind]))
    if unknown:
        raise ValueError(
            f"data.sources.{name}: unknown option(s) {unknown}; valid: {sorted(SOURCE_KINDS[kind])}"
        )
    opts = {**SOURCE_KINDS[kind], **options}
    if kind == "emoji":
        corpus = build_emoji_corpus(Path(opts["root"]) if opts["root"] else None)
        styles = {"twemoji": "twemoji.tsv", "openmoji": "openmoji.tsv", "all": "emoji.tsv"}
        if opts["style"] not in styles:
            raise ValueError(f"data.sources.{name}.style must be one of {sorted(styles)}")
        return CsvImageText(corpus / styles[opts["style"]], extra_keys=("category", "subcategory"))
    if kind == "csv":
        if not opts["path"]:
            raise ValueError(f"data.sources.{name}.path is required for a csv source")
        return CsvImageText(
            opts["path"], img_key=opts["img_key"], caption_key=opts["caption_key"], sep=opts["sep"]
        )
    if not opts["root"]:
        raise ValueError(f"data.sources.{name}.root is required for an image_folder source")
    return ImageFolder(opts["root"])


def resolve_views(names: list[str], overrides: dict, image_size: int) -> dict[str, dict]:
    """Options of each needed view: the recipe's ``views`` entry, with image views sized to the model."""
    cfgs = {}
    for name in names:
        user = dict(overrides.get(name) or {})
        _, options = resolve_view(name, user)
        if "size" in options and "size" not in user:
            user["size"] = image_size
        elif "size" in options and user["size"] != image_size:
            raise ValueError(
                f"views.{name}.size={user['size']} but the model takes {image_size} px images; "
                f"set model.image_size={user['size']} instead (or drop views.{name}.size)"
            )
        cfgs[name] = user
    return cfgs


class SeededItems(Dataset):
    """Seeds Python's and torch's RNG from the sampler's per-item seed before building views."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, seed = item
        random.seed(seed)
        torch.manual_seed(seed)
        return self.dataset[index]


class EpochSampler(Sampler):
    """A seeded permutation per epoch, cut into whole batches, sharded by rank, yielding (index, seed).

    Rank r takes batches r, r + world, ...; a trailing partial round is dropped so every rank runs the
    same number of steps. ``start_batch`` skips batches already trained on (resume mid-epoch).
    """

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.epoch, self.start_batch = 0, 0
        self.rank, self.world = dist.rank(), dist.world_size()
        if self.batches_per_epoch() == 0:
            raise ValueError(
                f"a source of {size} samples cannot fill one batch of {batch_size} per rank on "
                f"{self.world} rank(s); lower train.batch_size"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return self.size // (self.batch_size * self.world)

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)  # (size,)
        seeds = torch.randint(0, 2**31 - 1, (self.size,), generator=g)  # per-position augmentation seeds
        for b in range(self.start_batch, self.batches_per_epoch()):
            start = (b * self.world + self.rank) * self.batch_size
            for i in range(start, start + self.batch_size):
                yield int(order[i]), int(seeds[i])


class SourceLoader:
    """One source's DataLoader with its sampler; ``epoch_batches(e, start)`` iterates one epoch."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, workers: int):
        self.dataset = dataset
        self.sampler = EpochSampler(len(dataset), batch_size, seed)
        self.loader = DataLoader(
            SeededItems(dataset),
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict]:
        self.sampler.set_epoch(epoch, start_batch)
        return iter(self.loader)


class MultiSourceLoader:
    """Batches holding one entry per source: ``{"pairs": {...}, "labels": {...}}``.

    The first source sets the epoch length; the others cycle through their own epochs alongside.
    """

    def __init__(self, loaders: dict[str, SourceLoader]):
        self.loaders = loaders
        self.main = next(iter(loaders))
        self.steps_per_epoch = loaders[self.main].sampler.batches_per_epoch()

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict]:
        iters = {self.main: self.loaders[self.main].epoch_batches(epoch, start_batch)}
        for name, loader in self.loaders.items():
            if name != self.main:
                iters[name] = _cycle(loader, epoch, start_batch)
        for main_batch in iters[self.main]:
            batch = {self.main: main_batch}
            for name, it in iters.items():
                if name != self.main:
                    batch[name] = next(it)
            yield batch


def _cycle(loader: SourceLoader, epoch: int, start_batch: int) -> Iterator[dict]:
    """Endless batches of a secondary source, positioned where step ``start_batch`` of ``epoch`` is."""
    per_epoch = loader.sampler.batches_per_epoch()
    sub_epoch, offset = divmod(start_batch, per_epoch)
    for k in itertools.count():
        yield from loader.epoch_batches(epoch * 1000 + sub_epoch + k, offset if k == 0 else 0)


def build_loaders(
    cfg, views_per_source: dict[str, list[str]], tokenizer, image_size: int
) -> MultiSourceLoader:
    """DataLoaders for every source an active objective reads."""
    loaders = {}
    for i, (source, views) in enumerate(views_per_source.items()):
        if source not in cfg.data.sources:
            raise ValueError(
                f"an objective reads source {source!r}, but data.sources has only {list(cfg.data.sources)}"
            )
        spec = dict(cfg.data.sources[source])
        batch_size = spec.pop("batch_size", None) or cfg.train.batch_size
        dataset = ViewDataset(
            build_source(source, spec),
            make_views(resolve_views(views, cfg.views, image_size), tokenizer, train=True),
        )
        loaders[source] = SourceLoader(dataset, batch_size, cfg.train.seed + 7919 * i, cfg.data.workers)
    return MultiSourceLoader(loaders)
