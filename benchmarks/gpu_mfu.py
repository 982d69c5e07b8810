"""`clip` training steps on synthetic data: synclip vs open_clip, eager and ``torch.compile``, with
samples/s and model FLOPs utilisation (MFU). Part of ``benchmarks/gpu_check.sh``.

Both sides train the same architecture on the same random batch (``throughput.py``'s step
functions: open_clip's ``CLIP`` + ``ClipLoss`` + AdamW, synclip's ``Pretrainer`` with the ``clip``
recipe), interleaved A/B in rounds, for each mode. FLOPs of one training step (forward + backward)
are counted once per side with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions,
attention; the optimiser's element-wise work is not counted), in eager mode: the model's FLOPs, the
same whether compiled or not. MFU = FLOPs per step / step time / the device's dense bf16 peak.

Peaks (dense bf16, no sparsity; NVIDIA's data sheets): H100 and H200 SXM 989 TFLOP/s, A100 312.
Other devices (and the CPU) need ``--peak-tflops``; without one MFU is left out.

    python benchmarks/gpu_mfu.py --model ViT-B-16 --batch 256 --precision bf16 --json mfu.json
    python benchmarks/gpu_mfu.py --model micro-vit-32 --batch 16 --device cpu --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import open_clip
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from throughput import measure, open_clip_step_fn, synclip_step_fn  # noqa: E402

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}  # dense bf16, by device name


def _sig(x: float) -> float:
    return float(f"{x:.4g}")  # 4 significant digits: tiny CPU runs and H200 runs alike


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def peak_tflops(name: str, override: float | None) -> float | None:
    """The dense bf16 peak of a device named ``name`` (``--peak-tflops`` wins), None if unknown."""
    if override:
        return float(override)
    for key, peak in PEAK_BF16_TFLOPS.items():
        if key in name:
            return peak
    return None


def step_flops(step, precision: str) -> int:
    """FLOPs of one call of ``step`` (forward + backward + optimiser step), as FlopCounterMode counts."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(precision)
    return int(counter.get_total_flops())


def synthetic_batch(model_name: str, batch: int, device: torch.device) -> dict:
    """Random images (B, 3, S, S) and token ids (B, L) at the architecture's sizes."""
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        from synclip.models import model_config  # synclip's small configs register with open_clip

        cfg = model_config(model_name)
    size, ctx = cfg["vision_cfg"]["image_size"], cfg["text_cfg"].get("context_length", 77)
    return {
        "pairs": {
            "image": torch.randn(batch, 3, size, size, device=device),  # (B, 3, S, S)
            "text": torch.randint(1, 49407, (batch, ctx), device=device),  # (B, L)
        }
    }


def run_mode(args, batch: dict, device: torch.device, compile: bool, peak: float | None) -> dict:
    sides = {
        "open_clip": open_clip_step_fn(args.model, batch, device, compile=compile),
        "synclip": synclip_step_fn(args.model, batch, device, compile=compile),
    }
    flops = {}
    for name, step in sides.items():
        measure(step, args.precision, args.warmup, device)  # warm-up (compiles when asked)
        flops[name] = step_flops(step, args.precision) if not compile else None
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in list(sides) if r % 2 == 0 else list(reversed(sides)):
            times[name] += measure(sides[name], args.precision, args.steps, device)
    out = {}
    for name, t in times.items():
        median = statistics.median(t)
        out[name] = {"step_s": round(median, 4), "samples_per_s": round(args.batch / median, 1)}
        if flops[name] is not None:
            out[name]["tflop_per_step"] = _sig(flops[name] / 1e12)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rounds", type=int, default=4, help="A/B rounds per mode")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side (compilation)")
    parser.add_argument("--modes", default="eager,compile", help="eager, compile, or both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()

    device = torch.device(args.device)
    name = device_name(device)
    peak = peak_tflops(name, args.peak_tflops)
    torch.manual_seed(0)
    batch = synthetic_batch(args.model, args.batch, device)
    result = {
        "model": args.model,
        "batch": args.batch,
        "precision": args.precision,
        "device": name,
        "peak_bf16_tflops": peak,
        "modes": {},
    }
    for mode in args.modes.split(","):
        try:
            result["modes"][mode] = run_mode(args, batch, device, mode == "compile", peak)
        except Exception as err:  # a failed torch.compile is a result too; the other parts still run
            result["modes"][mode] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    eager = result["modes"].get("eager") or {}
    flops = {side: eager.get(side, {}).get("tflop_per_step") for side in ("open_clip", "synclip")}
    for mode in result["modes"].values():
        for side, numbers in mode.items():
            if side == "error" or not flops.get(side):
                continue
            achieved = flops[side] / numbers["step_s"]  # TFLOP/s
            numbers["achieved_tflops"] = _sig(achieved)
            numbers["mfu"] = _sig(achieved / peak) if peak else None
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
