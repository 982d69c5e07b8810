"""Training data: sources from the config, views per source, deterministic sharded sampling.

Every sample's augmentation is seeded from (run seed, epoch, index), so a run is reproducible on the
CPU whatever the number of workers, and a resumed run sees exactly the batches an uninterrupted one
would have seen (the sampler starts at the resumed step's batch).

With ``data.augment=batched`` the workers ship decoded uint8 images and each image view's per-sample
parameters (drawn from the same per-sample seeds), and :meth:`MultiSourceLoader.to_device` finishes
the image views on the training device, batch-wide (:mod:`synclip.data.batched`).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from synclip import distributed as dist
from synclip.data.batched import batched_views
from synclip.data.collate import collate
from synclip.data.shards import ShardStream, expand_urls
from synclip.data.sources import build_source, resolve_source
from synclip.data.streams import SampleStream
from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import ViewDataset, make_views, resolve_view
from synclip.data.views.multi_crop import local_size
from synclip.train.view_fields import prompted_views

MAX_REPLACEMENT_TRIES = 16


def resolve_views(
    names: list[str], overrides: dict, image_size: int, patch_size: int | None = None
) -> dict[str, dict]:
    """Options of each needed view: the recipe's ``views`` entry, with image views sized to the model.

    With ``patch_size`` (ViT towers), mask views get their ``grid`` = ``image_size // patch_size``.
    Views with a ``fraction`` (``image_local``) get ``size`` = that fraction of the image size in whole
    patches (:func:`synclip.data.views.multi_crop.local_size`).
    """
    cfgs = {}
    for name in names:
        user = dict(overrides.get(name) or {})
        _, options = resolve_view(name, user)
        if "grid" in options and patch_size:
            grid = image_size // patch_size
            if user.setdefault("grid", grid) != grid:
                raise ValueError(
                    f"views.{name}.grid={user['grid']} but the model sees {grid} x {grid} patches; "
                    f"drop views.{name}.grid (it is filled from the model)"
                )
        if "fraction" in options:  # a crop smaller than the model's images (multi-crop local crops)
            if user.get("size") is None:
                user["size"] = local_size(
                    image_size, float(user.get("fraction", options["fraction"])), patch_size
                )
            elif patch_size and int(user["size"]) % patch_size:
                raise ValueError(
                    f"views.{name}.size={user['size']} is not a multiple of the patch size {patch_size}; "
                    f"drop it (it is filled from views.{name}.fraction) or give a multiple"
                )
        elif "size" in options and "size" not in user:
            user["size"] = image_size
        elif "size" in options and user["size"] != image_size:
            raise ValueError(
                f"views.{name}.size={user['size']} but the model takes {image_size} px images; "
                f"set model.image_size={user['size']} instead (or drop views.{name}.size)"
            )
        cfgs[name] = user
    return cfgs


class SeededItems(Dataset):
    """Seeds Python's and torch's RNG from the sampler's per-item seed before building views.

    A bad sample is replaced by another sample of the same source, drawn deterministically from the
    item's seed, so every batch keeps its size on every rank (``all_gather`` needs equal shapes, and
    the global batch stays the same for any number of ranks). The bad one is reported in the item as
    ``"__replaced__": (key, reason)`` and counted by :func:`collate_counting`.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def _get(self, index: int, seed: int) -> dict:
        random.seed(seed)
        torch.manual_seed(seed)
        return self.dataset[index]

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, seed = item
        first = self._get(index, seed)
        if "__bad__" not in first:
            return first
        rng, out = random.Random(seed), first
        for _ in range(MAX_REPLACEMENT_TRIES):
            out = self._get(rng.randrange(len(self.dataset)), rng.randrange(2**31 - 1))
            if "__bad__" not in out:
                break
        else:
            return first  # nothing readable nearby: collate drops it and the loop skips the step
        return {**out, "__replaced__": (first.get("key"), first["__bad__"])}


def collate_counting(items: list[dict]) -> dict:
    """:func:`collate` that also counts bad samples that were replaced (map-style) or skipped (streams)."""
    replaced = [item.pop("__replaced__") for item in items if "__replaced__" in item]
    dropped = [d for item in items for d in item.pop("__dropped__", [])]
    batch = collate(items)
    batch["n_bad"] += len(replaced) + len(dropped)
    batch["n_items"] += len(dropped)  # a replaced item was already counted once
    batch["bad"] = batch["bad"] + replaced + dropped
    return batch


class EpochSampler(Sampler):
    """A seeded permutation per epoch, cut into whole global batches, sharded by rank, yielding (index, seed).

    Global batch g is positions [g * B * world, (g + 1) * B * world) of the permutation, and rank r takes
    its rows [r * B, (r + 1) * B): one process with batch ``world * B`` sees exactly the union of the
    ranks' batches, in the same order and with the same per-position augmentation seeds. A trailing
    partial global batch is dropped so every rank runs the same number of steps. ``start_batch`` skips
    batches already trained on (resume mid-epoch).
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
            start = b * self.world * self.batch_size + self.rank * self.batch_size  # rows of global batch b
            for i in range(start, start + self.batch_size):
                yield int(order[i]), int(seeds[i])


def to_device(batch: dict, device: torch.device) -> dict:
    """Every tensor of ``batch`` (nested dicts) on ``device``; non-blocking (from pinned memory on CUDA)."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out[key] = to_device(value, device)
        elif isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        else:
            out[key] = value
    return out


class SourceLoader:
    """One source's DataLoader with its sampler; ``epoch_batches(e, start)`` iterates one epoch.

    ``augment`` (batched path): finishes the image views of a collated batch on the training device.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        workers: int,
        augment=None,
        pin_memory: bool = False,
    ):
        self.dataset, self.batch_size, self.augment = dataset, batch_size, augment
        self.num_samples = len(dataset)
        self.sampler = EpochSampler(len(dataset), batch_size, seed)
        self.loader = DataLoader(
            SeededItems(dataset),
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate_counting,
            persistent_workers=workers > 0,
            drop_last=False,
            pin_memory=pin_memory,
        )

    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch()

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict]:
        self.sampler.set_epoch(epoch, start_batch)
        return iter(self.loader)


class StreamLoader:
    """A streamed source: ``num_samples // (B * world)`` batches per epoch from a
    :class:`~synclip.data.streams.SampleStream` (webdataset shards, a streaming Hugging Face dataset).

    Workers are not persistent, so each epoch's stream is rebuilt from (seed, epoch). On resume at batch
    s, worker w (which produced batches w, w + W, ... in the DataLoader's round-robin order) skips the
    samples it had already produced, and the workers' roles rotate so that the one owning batch s
    yields first.
    """

    def __init__(
        self,
        stream: SampleStream,
        batch_size: int,
        num_samples: int,
        workers: int,
        augment=None,
        pin_memory: bool = False,
    ):
        self.stream, self.batch_size, self.workers, self.augment = stream, batch_size, workers, augment
        self.num_samples = num_samples
        if self.batches_per_epoch() == 0:
            raise ValueError(
                f"num_samples={num_samples} cannot fill one batch of {batch_size} on {dist.world_size()} rank(s)"
            )
        self.loader = DataLoader(
            stream,
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_counting,
            pin_memory=pin_memory,
        )

    def batches_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * dist.world_size())

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict]:
        w = max(1, self.workers)
        skip = [max(0, start_batch - i + w - 1) // w * self.batch_size for i in range(w)]
        # the DataLoader starts with its worker 0: make it play the worker whose turn batch s is
        self.stream.set_epoch(epoch, skip, shift=start_batch % w)
        return itertools.islice(iter(self.loader), self.batches_per_epoch() - start_batch)


class MultiSourceLoader:
    """Batches holding one entry per source: ``{"pairs": {...}, "labels": {...}}``.

    The first source sets the epoch length; the others cycle through their own epochs alongside.
    """

    def __init__(self, loaders: dict[str, SourceLoader]):
        self.loaders = loaders
        self.main = next(iter(loaders))
        self.steps_per_epoch = loaders[self.main].batches_per_epoch()

    def to_device(self, batch: dict, device: torch.device) -> dict:
        """``batch`` of :meth:`epoch` ready for the model on ``device``: tensors moved, and on the batched
        path every source's image views cropped and augmented there."""
        out = {}
        for name, source in batch.items():
            augment = self.loaders[name].augment
            out[name] = to_device(augment(source, device) if augment else source, device)
        return out

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


def _cycle(loader: SourceLoader | StreamLoader, epoch: int, start_batch: int) -> Iterator[dict]:
    """Endless batches of a secondary source, positioned where step ``start_batch`` of ``epoch`` is."""
    per_epoch = loader.batches_per_epoch()
    sub_epoch, offset = divmod(start_batch, per_epoch)
    for k in itertools.count():
        yield from loader.epoch_batches(epoch * 1000 + sub_epoch + k, offset if k == 0 else 0)


def pretrainer_loaders(
    cfg, pretrainer, tokenizer=None, accum_steps: int = 1, pin_memory: bool = False
) -> MultiSourceLoader:
    """:func:`build_loaders` for a built pretrainer: the views its recipe reads, its model's image size
    and patch grid, and ``tokenizer`` or else its model's (a text tower's own file where it has one)."""
    model = pretrainer.model
    if tokenizer is None:
        tokenizer = get_tokenizer(model.context_length, model.tokenizer_file)
    return build_loaders(
        cfg, pretrainer.recipe.views(), tokenizer, model.image_size, accum_steps, model.patch_size, pin_memory
    )


def build_loaders(
    cfg,
    views_per_source: dict[str, list[str]],
    tokenizer,
    image_size: int,
    accum_steps: int = 1,
    patch_size: int | None = None,
    pin_memory: bool = False,
) -> MultiSourceLoader:
    """DataLoaders for every source an active objective reads.

    Each loader batch holds ``accum_steps`` micro-batches of the per-process batch size.
    ``patch_size`` (of a ViT image tower) sizes the patch grid of mask views. ``pin_memory``: page-locked
    batches, for non-blocking copies to CUDA. ``cfg.data.augment`` picks the image augmentation path.
    """
    batched = cfg.data.augment == "batched"
    side = cfg.data.decode_size or 2 * image_size  # the batched path's canvas
    loaders = {}
    for i, (source, views) in enumerate(views_per_source.items()):
        if source not in cfg.data.sources:
            raise ValueError(
                f"an objective reads source {source!r}, but data.sources has only {list(cfg.data.sources)}"
            )
        spec = dict(cfg.data.sources[source])
        batch_size = (spec.pop("batch_size", None) or cfg.train.batch_size) * accum_steps
        view_cfgs = resolve_views(views, cfg.views, image_size, patch_size)
        if batched:
            view_fns, augment = batched_views(view_cfgs, tokenizer, side)
        else:
            view_fns, augment = make_views(view_cfgs, tokenizer, train=True), None
        view_fns = prompted_views(view_fns, views, cfg.views, spec)
        seed = cfg.train.seed + 7919 * i
        draft = side if augment else None  # JPEGs decoded at about the canvas size
        if spec.get("kind") == "webdataset":
            loaders[source] = _stream_loader(
                source, spec, view_fns, batch_size, seed, cfg.data.workers, augment, pin_memory, draft
            )
            continue
        if spec.get("kind") == "hf_dataset" and spec.get("streaming"):
            loaders[source] = _hf_stream_loader(
                source, spec, view_fns, batch_size, seed, cfg.data.workers, augment, pin_memory
            )
            continue
        data_source = build_source(source, spec)
        if hasattr(data_source, "decode_size"):  # sources that decode files (csv, image_folder)
            data_source.decode_size = draft
        dataset = ViewDataset(data_source, view_fns)
        loaders[source] = SourceLoader(dataset, batch_size, seed, cfg.data.workers, augment, pin_memory)
    return MultiSourceLoader(loaders)


def _stream_loader(
    name: str,
    spec: dict,
    views,
    batch_size: int,
    seed: int,
    workers: int,
    augment=None,
    pin_memory: bool = False,
    draft: int | None = None,
) -> StreamLoader:
    _, opts = resolve_source(name, spec)
    if not opts["urls"]:
        raise ValueError(f"data.sources.{name}.urls is required, e.g. 'shards/shard-{{000000..000009}}.tar'")
    num_samples = opts["num_samples"]
    if not num_samples:
        sizes = Path(expand_urls(opts["urls"])[0]).parent / "sizes.json"
        if not sizes.exists():
            raise ValueError(f"data.sources.{name}.num_samples is required (no sizes.json beside the shards)")
        num_samples = sum(json.loads(sizes.read_text()).values())
    stream = ShardStream(opts["urls"], views, seed, bool(opts["resampled"]), int(opts["shuffle_buffer"]))
    stream.decode_size = draft
    return StreamLoader(stream, batch_size, int(num_samples), workers, augment, pin_memory)


def _hf_stream_loader(
    name: str,
    spec: dict,
    views,
    batch_size: int,
    seed: int,
    workers: int,
    augment=None,
    pin_memory: bool = False,
) -> StreamLoader:
    """A streaming Hugging Face dataset (:class:`synclip.data.hf_stream.HFStream`); an epoch is
    ``num_samples`` rows, counted from the stream (one pass over a text or label column) when not given."""
    from synclip.data.hf_stream import HFStream, count_rows
    from synclip.data.sources.hf_dataset import open_source

    _, opts = resolve_source(name, spec)
    dataset, rows, _ = open_source(name, opts)
    num_samples = opts["num_samples"] or count_rows(dataset, rows)
    stream = HFStream(dataset, rows, views, seed, int(opts["shuffle_buffer"]))
    return StreamLoader(stream, batch_size, int(num_samples), workers, augment, pin_memory)
