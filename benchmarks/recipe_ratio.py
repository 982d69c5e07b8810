"""Step time of each recipe relative to `clip`, same model, same batch size, one run.

A step is forward + backward + AdamW (synclip's optimiser) + post-step hooks on one real batch of
the recipe's own data (every source and view it reads; data loading is not timed). A staged recipe is
measured one stage at a time (``eva_mim:mim``); earlier stages it starts from or distils are stood in
for by untrained checkpoints, which cost the same. Recipes are measured in interleaved rounds (the
order reverses each round) so machine noise hits them alike; the ratio of median step times to
`clip` is printed. On the CPU the ratio uses this process's CPU time, which other processes sharing
the machine do not inflate. `slip_pd50` is `slip` with FLIP-style patch dropout 0.5 on the SimCLR
crops; `slip_mlp1024` narrows SLIP's 4096-wide SimCLR head to 1024 and `aclip_mlp1024` A-CLIP's
SimCLR and BYOL heads (ablations, not in the default list). ``--model ''`` keeps each recipe's own model (e.g. `lit`'s EfficientNet tower).

    python benchmarks/recipe_ratio.py --model tiny-vit-48 --batch 128 --rounds 5
    python benchmarks/recipe_ratio.py --model micro-vit-32 --recipes clip,flip:masked,clip_mae,eva_mim:mim
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from synclip.config import load_config, run_dir_for, stage_configs
from synclip.io.checkpoint import FORMAT, save_atomic
from synclip.models import open_clip_state_dict
from synclip.train.data import pretrainer_loaders
from synclip.train.optim import create_optimizer
from synclip.train.setup import build_pretrainer

RECIPES = {  # label -> (recipe, overrides, stage of a staged recipe or None)
    "clip": ("clip", [], None),
    "simclr": ("simclr", [], None),
    "slip": ("slip", [], None),
    "slip_pd50": ("slip", ["objectives.simclr.patch_dropout=0.5"], None),
    "slip_mlp1024": (
        "slip",
        ["objectives.simclr.mlp_dim=1024"],
        None,
    ),  # ablation: a head sized for small towers
    "aclip": ("aclip", [], None),
    "aclip_mlp1024": (  # ablation: A-CLIP's SimCLR and BYOL heads 1024 wide, as slip_mlp1024
        "aclip",
        [f"objectives.aclip.{head}_mlp_dim=1024" for head in ("simclr", "byol")],
        None,
    ),
    "declip": ("declip", [], None),
    "nclip": ("nclip", [], None),
    "xclip": ("xclip", [], None),
    "clip_mae_d64": ("clip_mae", ["objectives.mae.decoder_width=64"], None),  # decoder for micro-vit-32
    "lit_effnet": ("lit", ["model.name=effnet-lite0-text"], None),  # lit's own tower whatever --model says
    "lit_unlocked": ("lit", ["model.name=effnet-lite0-text", "model.lock_image=false"], None),  # LiT's "Uu"
    "clip_effnet": ("clip", ["model.name=effnet-lite0-text"], None),  # lit's architecture, from scratch
}
DEFAULT = ["clip", "simclr", "slip", "slip_pd50", "declip", "nclip", "xclip"]


def recipe_spec(label: str) -> tuple[str, list[str], str | None]:
    """A label of :data:`RECIPES`, a recipe name, or ``recipe:stage`` for one stage of a staged recipe."""
    if label in RECIPES:
        return RECIPES[label]
    recipe, _, stage = label.partition(":")
    return recipe, [], stage or None


def stage_config(recipe: str, overrides: list[str], stage: str | None, workdir: Path):
    """The config of one stage (or the recipe), with placeholder checkpoints for earlier stages.

    A stage that starts from (or distils) an earlier stage's checkpoint costs the same whatever the
    weights are, so each earlier stage's checkpoint is its untrained model, written under ``workdir``.
    """
    cfg = load_config(recipe, [*overrides, f"train.out_dir={workdir}", "data.workers=0"])
    plans = stage_configs(cfg)
    names = [name for name, _ in plans]
    if cfg.stages and stage not in names:
        raise SystemExit(f"{recipe} has stages {names}; measure one as {recipe}:<stage>")
    for name, stage_cfg in plans:
        if name == (stage or ""):
            return stage_cfg
        pretrainer = build_pretrainer(stage_cfg)
        save_atomic(
            {
                "format": FORMAT,
                "model_name": pretrainer.model.name,
                "model": open_clip_state_dict(pretrainer.model),
                "recipe": pretrainer.recipe.state_dict(),
                "config": stage_cfg.to_dict(),
                "finished": True,
                "step": 0,
            },
            run_dir_for(stage_cfg) / "checkpoint.pt",
        )
    raise AssertionError("unreachable")


def step_fn(
    model_name: str, label: str, b: int, device, precision: str, workdir: Path, extra: list[str] = ()
):
    """One training step of ``label`` on one real batch of its own data (every source, every view)."""
    recipe, overrides, stage = recipe_spec(label)
    sized = [f"train.batch_size={b}"] + ([f"model.name={model_name}"] if model_name else [])
    cfg = stage_config(recipe, [*sized, *extra, *overrides], stage, workdir / label.replace(":", "-"))
    torch.manual_seed(0)
    pretrainer = build_pretrainer(cfg).to(device).train()
    optimizer = create_optimizer(pretrainer, 1e-4, 0.1, (0.9, 0.98), 1e-6)
    data = pretrainer_loaders(cfg, pretrainer)
    batch = data.to_device(next(data.epoch(0)), device)
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
    parser.add_argument("--model", default="tiny-vit-48", help="'' keeps each recipe's own model")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per recipe per round")
    parser.add_argument(
        "--recipes", default=",".join(DEFAULT), help="labels above, recipe names, or recipe:stage"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for every recipe (key=value)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.recipes.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="synclip-ratio-"))
    steps = {n: step_fn(args.model, n, args.batch, device, args.precision, workdir, args.set) for n in names}
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
        "overrides": args.set,
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
