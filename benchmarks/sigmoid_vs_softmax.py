"""Time and memory of SigLIP's sigmoid loss against CLIP's softmax loss as the global batch grows.

    python benchmarks/sigmoid_vs_softmax.py --world 2 --batches 64 128 256 512 1024 --dim 256

Spawns ``--world`` gloo processes on CPU. Each rank holds ``global / world`` random image and text
embeddings (the towers are left out: only the loss and its collectives are measured) and runs
forward + backward of ``synclip.losses.clip_loss`` and ``synclip.losses.siglip_loss``. Reported per
loss and global batch, the slowest rank's numbers:

- ``ms``: median wall time of forward + backward over ``--iters`` runs (after 2 warm-up runs);
- ``saved MiB``: bytes autograd keeps for the backward pass (distinct storages seen by a
  ``saved_tensors_hooks``), the activation memory a loss adds to a training step;
- ``peak MiB``: peak of torch's CPU allocations during one forward + backward, from the profiler's
  memory events, relative to the start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from synclip.losses import clip_loss, siglip_loss


def _step(name: str, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    img = F.normalize(image, dim=-1)  # (B, D)
    txt = F.normalize(text, dim=-1)  # (B, D)
    if name == "clip":
        return clip_loss(img, txt, torch.tensor(14.3))["loss"]
    return siglip_loss(img, txt, torch.tensor(10.0), torch.tensor(-10.0))["loss"]


def _saved_bytes(name: str, image: torch.Tensor, text: torch.Tensor) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _step(name, image, text)
    loss.backward()
    return sum(storages.values())


def _peak_bytes(name: str, image: torch.Tensor, text: torch.Tensor) -> int:
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        _step(name, image, text).backward()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start
    )
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def _measure(rank: int, world: int, batches: list[int], dim: int, iters: int) -> list[dict]:
    rows = []
    for global_batch in batches:
        local = global_batch // world
        gen = torch.Generator().manual_seed(rank)
        for name in ("clip", "siglip"):
            image = torch.randn(local, dim, generator=gen).requires_grad_(True)
            text = torch.randn(local, dim, generator=gen).requires_grad_(True)
            times = []
            for i in range(iters + 2):
                torch_dist.barrier()
                start = time.perf_counter()
                _step(name, image, text).backward()
                if i >= 2:
                    times.append(time.perf_counter() - start)
            rows.append(
                {
                    "loss": name,
                    "global": global_batch,
                    "ms": 1000 * statistics.median(times),
                    "saved": _saved_bytes(name, image, text),
                    "peak": _peak_bytes(name, image, text),
                }
            )
    return rows


def _worker(rank, world, init_file, out_dir, batches, dim, iters):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(_measure(rank, world, batches, dim, iters), Path(out_dir) / f"rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(
            _worker,
            args=(args.world, str(Path(tmp) / "init"), tmp, args.batches, args.dim, args.iters),
            nprocs=args.world,
            join=True,
        )
        ranks = [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(args.world)]

    mib = 2**20
    print(f"world={args.world} dim={args.dim} iters={args.iters} (slowest / largest rank)")
    print("| global batch | loss | fwd+bwd ms | saved MiB | peak MiB |")
    print("|---:|---|---:|---:|---:|")
    for i, row in enumerate(ranks[0]):
        ms = max(r[i]["ms"] for r in ranks)
        saved = max(r[i]["saved"] for r in ranks) / mib
        peak = max(r[i]["peak"] for r in ranks) / mib
        print(f"| {row['global']} | {row['loss']} | {ms:.2f} | {saved:.2f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
