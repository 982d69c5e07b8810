"""Step time of each recipe relative to `clip`, same model, same batch, one run.

A step is forward + backward + AdamW (synclip's optimiser) + post-step hooks on a fixed random
batch holding every view the recipe reads (data loading is not timed). Recipes are measured in
interleaved rounds (the order reverses each round) so machine noise hits them alike; the ratio of
median step times to `clip` is printed. On the CPU the ratio uses this process's CPU time, which
other processes sharing the machine do not inflate (run with ``--threads 1`` for the cleanest count). `slip_pd50` is `slip` with FLIP-style patch dropout 0.5 on
the SimCLR crops (``objectives.simclr.patch_dropout=0.5``); `slip_mlp1024` narrows SLIP's 4096-wide
SimCLR head to 1024 (an ablation; not in the default list).

    python benchmarks/recipe_ratio.py --model tiny-vit-48 --batch 128 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from synclip.config import load_config
from synclip.data.views import view_defaults
from synclip.models import create_model
from synclip.recipe import Pretrainer, Recipe
from synclip.train.optim import create_optimizer

RECIPES = {
    "clip": ("clip", {}),
    "simclr": ("simclr", {}),
    "slip": ("slip", {}),
    "slip_pd50": ("slip", {"simclr": {"patch_dropout": 0.5}}),
    "slip_mlp1024": ("slip", {"simclr": {"mlp_dim": 1024}}),  # ablation: a head sized for small towers
    "declip": ("declip", {}),
    "nclip": ("nclip", {}),
    "xclip": ("xclip", {}),
}


def make_batch(views: list[str], view_cfgs: dict, b: int, size: int, ctx: int, device) -> dict:
    """Random tensors shaped like each view (MLM: 15% of positions labelled)."""
    out = {}
    for view in views:
        if view == "image":
            out[view] = torch.randn(b, 3, size, size, device=device)
        elif view == "image_ssl":
            num = int((view_cfgs.get(view) or {}).get("num", view_defaults("image_ssl")["num"]))
            out[view] = torch.randn(b, num, 3, size, size, device=device)
        elif view == "text_mlm":
            ids = torch.randint(1, 49405, (b, ctx), device=device)
            labels = torch.where(torch.rand(b, ctx, device=device) < 0.15, ids, -100)
            out[view] = torch.stack([ids, labels], 1)  # (B, 2, L)
        elif view.startswith("text"):
            out[view] = torch.randint(1, 49405, (b, ctx), device=device)
        else:
            raise ValueError(f"no benchmark input for view {view!r}")
    return {"pairs": out}


def step_fn(model_name: str, recipe: str, extra: dict, b: int, device, precision: str):
    cfg = load_config(recipe)
    objectives = {k: {**(v or {}), **extra.get(k, {})} for k, v in cfg.objectives.items()}
    torch.manual_seed(0)
    model = create_model(model_name)
    pretrainer = Pretrainer(model, Recipe(model, objectives)).to(device).train()
    optimizer = create_optimizer(pretrainer, 1e-4, 0.1, (0.9, 0.98), 1e-6)
    views = pretrainer.recipe.views()["pairs"]
    batch = make_batch(views, cfg.views, b, model.image_size, model.context_length, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = pretrainer(batch)["loss"]
        loss.backward()
        optimizer.step()
        pretrainer.post_step()

    return step


def measure(step, n: int, device) -> list[tuple[float, float]]:
    """(wall seconds, process CPU seconds) of ``n`` steps."""
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny-vit-48")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per recipe per round")
    parser.add_argument("--recipes", default=",".join(n for n in RECIPES if n != "slip_mlp1024"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.recipes.split(",")
    steps = {n: step_fn(args.model, *RECIPES[n], args.batch, device, args.precision) for n in names}
    for step in steps.values():  # warm-up
        measure(step, 2, device)
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names if r % 2 == 0 else reversed(names):
            times[n] += measure(steps[n], args.steps, device)
    wall = {n: statistics.median(w for w, _ in t) for n, t in times.items()}
    cpu = {n: statistics.median(c for _, c in t) for n, t in times.items()}
    # On a shared CPU, wall time also counts other processes; CPU time of this process does not.
    basis = cpu if device.type == "cpu" else wall
    base = basis.get("clip")
    result = {
        "model": args.model,
        "batch": args.batch,
        "precision": args.precision,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "ratio_basis": "process CPU time" if device.type == "cpu" else "wall time",
        "step_wall_s": {n: round(m, 4) for n, m in wall.items()},
        "step_cpu_s": {n: round(m, 4) for n, m in cpu.items()},
        "ratio_to_clip": {n: round(m / base, 3) for n, m in basis.items()} if base else None,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
