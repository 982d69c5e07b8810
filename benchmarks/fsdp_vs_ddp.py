"""FSDP2 (``train.fsdp=true``) against DDP on N gloo CPU processes: losses of the same steps and memory per rank.

Each mode runs in its own N spawned processes (one thread each), built as ``synclip train`` builds a
run (``build_pretrainer``, ``pretrainer_loaders``, ``create_optimizer``, the loop's ``wrap`` or
``wrap_sharded``) on the emoji corpus, and trains ``--steps`` optimizer steps: forward, backward,
gradient clipping, AdamW, post-step hooks. Per rank it reports:

- the loss of every step (averaged over ranks), which must agree between the modes;
- ``state MiB``: the bytes this rank holds in parameters, gradients and AdamW moments after the last
  step (its shards under FSDP, whole tensors under DDP), counted tensor by tensor;
- ``step peak MiB``: the peak resident memory during the last step above the resident memory before
  the model was built: freed memory is handed back to the OS first (``malloc_trim``) and the peak is
  reset (``/proc/self/clear_refs``), so it counts what the step holds at its worst: parameters,
  gradients, optimizer state, activations, gathered FSDP units and communication buffers;
- ``process peak MiB``: the same over the whole process (``ru_maxrss``), which includes building the
  whole model on every rank before it is sharded;
- the median step time (seconds), for information only on a shared CPU.

    python benchmarks/fsdp_vs_ddp.py --recipe clip --model ViT-B-32 --image-size 64 --batch 4 --steps 4
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _status_mib(field: str = "VmRSS") -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: resident peak) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bytes(tensor: torch.Tensor | None) -> int:
    if tensor is None:
        return 0
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return local.numel() * local.element_size()


def _state_bytes(pretrainer, optimizer) -> int:
    """Bytes of this rank's parameters, gradients and optimizer state (local shards under FSDP)."""
    state = sum(_bytes(p) + _bytes(p.grad) for p in pretrainer.parameters())
    tensors = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return state + sum(_bytes(v) for v in tensors)


def _rank(rank: int, world: int, init: str, mode: str, args, folder: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    from synclip.config import load_config
    from synclip.data.emoji import build_emoji_corpus
    from synclip.train.data import pretrainer_loaders
    from synclip.train.fsdp import average_replicated_grads, clip_grad_norm
    from synclip.train.loop import autocast, wrap, wrap_sharded
    from synclip.train.optim import create_optimizer
    from synclip.train.setup import build_pretrainer, seed_everything

    tsv = build_emoji_corpus() / "twemoji.tsv"
    overrides = [
        f"model.name={args.model}",
        f"model.image_size={args.image_size}",
        f"data.sources={{pairs: {{kind: csv, path: {tsv}, caption_key: caption}}}}",
        "data.workers=0",
        f"train.batch_size={args.batch}",
        f"train.precision={args.precision}",
        f"train.fsdp={mode == 'fsdp'}",
    ]
    cfg = load_config(args.recipe, overrides)
    baseline = _status_mib()
    seed_everything(cfg.train.seed)
    pretrainer = build_pretrainer(cfg)
    data = pretrainer_loaders(cfg, pretrainer)
    device = torch.device("cpu")
    sharding = mode == "fsdp"
    wrapped = wrap_sharded(pretrainer, device, args.precision, False) if sharding else None
    t = cfg.train
    optimizer = create_optimizer(pretrainer, t.lr, t.weight_decay, (t.beta1, t.beta2), t.eps)
    if not sharding:
        wrapped = wrap(pretrainer, device, False, None)
    pretrainer.train()
    losses, times = [], []
    for step, batch in zip(range(args.steps), data.epoch(0, 0)):
        last = step == args.steps - 1
        batch = data.to_device(batch, device)  # as the loop: the batched path augments here
        optimizer.zero_grad(set_to_none=True)
        if last:  # the resident peak of this step alone
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")
        start = time.perf_counter()
        with autocast(device, args.precision):
            out = wrapped(batch)
        out["loss"].backward()
        if sharding:
            average_replicated_grads(pretrainer)
        (clip_grad_norm if sharding else torch.nn.utils.clip_grad_norm_)(pretrainer.parameters(), 1.0)
        optimizer.step()
        pretrainer.post_step()
        times.append(time.perf_counter() - start)
        if last:
            step_peak = _status_mib("VmHWM") - baseline
        loss = out["loss"].detach().float().clone()
        dist.all_reduce(loss)
        losses.append(loss.item() / world)
    state = _state_bytes(pretrainer, optimizer)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        "losses": losses,
        "state_mib": state / 2**20,
        "step_peak_mib": step_peak,
        "peak_growth_mib": peak - baseline,
        "step_s": statistics.median(times[1:] or times),
        "params_m": sum(p.numel() for p in pretrainer.parameters()) / 1e6,
    }
    Path(folder, f"{mode}{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def run(mode: str, args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank, args=(args.procs, str(Path(tmp) / "init"), mode, args, tmp), nprocs=args.procs)
        return [json.loads(Path(tmp, f"{mode}{r}.json").read_text()) for r in range(args.procs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="clip")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--image-size", type=int, default=64, help="small images: memory is in the weights")
    parser.add_argument("--batch", type=int, default=4, help="per process")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--modes", nargs="+", default=["ddp", "fsdp"], choices=["ddp", "fsdp"])
    args = parser.parse_args()
    results = {mode: run(mode, args) for mode in args.modes}
    params = results[args.modes[0]][0]["params_m"]
    print(f"{args.recipe}, {args.model} ({params:.1f}M parameters), {args.image_size}px,")
    print(f"batch {args.batch} per rank, {args.procs} gloo processes, {args.precision}")
    print("\n| mode | rank | loss per step | state MiB | step peak MiB | process peak MiB | step s |")
    print("|---|---|---|---|---|---|---|")
    for mode, ranks in results.items():
        for rank, r in enumerate(ranks):
            losses = ", ".join(f"{x:.6f}" for x in r["losses"])
            mib = f"{r['state_mib']:.0f} | {r['step_peak_mib']:.0f} | {r['peak_growth_mib']:.0f}"
            row = f"{mib} | {r['step_s']:.2f}"
            print(f"| {mode} | {rank} | {losses} | {row} |")
    if len(results) == 2:
        diff = max(abs(a - b) for a, b in zip(results["ddp"][0]["losses"], results["fsdp"][0]["losses"]))
        print(f"\nlargest |loss(DDP) - loss(FSDP)| over the steps: {diff:.2e}")


if __name__ == "__main__":
    main()
