"""Training-step throughput: synclip's `clip` recipe vs open_clip's own model + ClipLoss, same run.

Both sides train the same architecture on the same random batch at the same precision: forward,
CLIP loss, backward, AdamW step (open_clip: its `CLIP` model, `ClipLoss`, and torch's default AdamW
as open_clip's training script builds it; synclip: `Pretrainer` with the `clip` recipe and its
optimiser). Steps are interleaved A/B in rounds so machine noise hits both sides alike; the ratio of
median step times (open_clip / synclip) is printed: >= 1.0 means synclip is not slower.

    python benchmarks/throughput.py --model tiny-vit-48 --batch 128 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import open_clip
import torch

from synclip.models import create_model
from synclip.recipe import Pretrainer, Recipe
from synclip.train.optim import create_optimizer


def open_clip_step_fn(
    name: str,
    batch: dict,
    device: torch.device,
    fused: bool = False,
    grad_checkpointing: bool = False,
    compile: bool = False,
):
    """One open_clip training step; ``compile`` runs the model's forward through ``torch.compile``."""
    model = open_clip.create_model(name).to(device).train()
    model.set_grad_checkpointing(grad_checkpointing)
    forward = torch.compile(model) if compile else model
    loss_fn = open_clip.loss.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-4,
        betas=(0.9, 0.98),
        eps=1e-6,
        fused=fused or None,
    )
    image, text = batch["pairs"]["image"], batch["pairs"]["text"]

    def step(precision: str) -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            img, txt, scale = forward(image, text)
            loss = loss_fn(img, txt, scale)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)

    return step


def synclip_step_fn(
    name: str, batch: dict, device: torch.device, grad_checkpointing: bool = False, compile: bool = False
):
    """One synclip ``clip`` training step; ``compile`` compiles the forward as ``train.compile`` does."""
    model = create_model(name)
    model.set_grad_checkpointing(grad_checkpointing)
    pretrainer = Pretrainer(model, Recipe(model, {"clip": {"weight": 1.0}})).to(device).train()
    optimizer = create_optimizer(pretrainer, 1e-4, 0.1, (0.9, 0.98), 1e-6)
    forward = torch.compile(pretrainer) if compile else pretrainer

    def step(precision: str) -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = forward(batch)["loss"]
        loss.backward()
        optimizer.step()
        pretrainer.post_step()

    return step


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(step, precision: str, n: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(n):
        _sync(device)
        start = time.perf_counter()
        step(precision)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny-vit-48")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rounds", type=int, default=8, help="A/B rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument(
        "--open-clip-fused-adamw", action="store_true", help="ablation: give open_clip the fused AdamW too"
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = open_clip.create_model(args.model)
    size, ctx = model.visual.image_size[0], model.context_length
    del model
    batch = {
        "pairs": {
            "image": torch.randn(args.batch, 3, size, size, device=device),
            "text": torch.randint(1, 49407, (args.batch, ctx), device=device),
        }
    }
    sides = {
        "open_clip": open_clip_step_fn(args.model, batch, device, args.open_clip_fused_adamw),
        "synclip": synclip_step_fn(args.model, batch, device),
    }
    for step in sides.values():  # warm-up
        measure(step, args.precision, 2, device)
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name] += measure(sides[name], args.precision, args.steps, device)
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "model": args.model,
        "batch": args.batch,
        "precision": args.precision,
        "open_clip_fused_adamw": args.open_clip_fused_adamw,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "open_clip_step_s": round(median["open_clip"], 4),
        "synclip_step_s": round(median["synclip"], 4),
        "synclip_pairs_per_s": round(args.batch / median["synclip"], 1),
        "ratio_open_clip_over_synclip": round(median["open_clip"] / median["synclip"], 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
