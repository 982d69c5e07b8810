"""Bit-identical check: does every shipped recipe still train to exactly the same tensors?

Trains each shipped recipe (every stage of a staged one) for a few optimizer steps on the CPU with a
fixed seed and tiny settings (micro-vit-32 unless the recipe loads weights into its own image tower,
as `lit` does; batch 8; 3 steps per stage; 256 emoji pairs; Fashion-MNIST's test split; one thread),
then either saves or compares every tensor of the final checkpoint: its ``model`` and ``recipe``
state dicts and the optimizer state, plus the same of each earlier stage's final checkpoint
(``stages.<name>.`` keys). A non-tensor recipe entry (a classifier's vocabulary) is stored as the
UTF-8 bytes of its JSON. Only the public interface is used (``python -m synclip.cli`` in subprocesses,
the checkpoint files), so the script works unchanged across internal refactors.

    # before the refactor: write the reference, one DIR/<recipe>.pt (a plain dict of tensors) each
    python benchmarks/bit_identical.py --save ~/.cache/synclip/bit_identical/REF
    # after it: train again and compare with torch.equal; exits 1 if a tensor differs or is missing
    python benchmarks/bit_identical.py --compare ~/.cache/synclip/bit_identical/REF [--recipes clip flip]

The code under test is whichever synclip ``python -m synclip.cli`` imports (printed first; set
PYTHONPATH=<tree>/src to test another checkout). All 13 recipes take 2-4 minutes on 2 CPU cores;
the reference is about 1.4 GB (the recipes' wide heads, nCLIP's prototypes, and their Adam moments).

Keys the reference lacks (e.g. a new entry of the ``recipe`` state dict) are reported, not failed.
Optimizer keys are ``optimizer.<parameter index>.<state>``, so a change of the parameter order shows
as optimizer differences; the report says when the same tensors are merely in another order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

STEPS, BATCH, PAIRS, THREADS, SEED = 3, 8, 256, 1, 0
TINY_MODEL = "micro-vit-32"
TRAIN = {"device": "cpu", "seed": SEED, "epochs": 1, "max_steps": STEPS, "batch_size": BATCH,
         "warmup_steps": 2, "log_every": 1, "progress": "false"}  # fmt: skip
# one thread (and a fixed hash seed) make the arithmetic the same on any machine, run after run
ENV = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS), "PYTHONHASHSEED": "0"}

DESCRIBE = """
import contextlib, io, json, sys
import synclip
from synclip.cli import main
def out(*argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(list(argv)) == 0, argv
    return buf.getvalue()
names = [line.split()[0] for line in out("recipes").splitlines() if line.strip()]
configs = {n: json.loads(out("train", n, "--print-config")) for n in names}
print(json.dumps({"synclip": synclip.__file__, "configs": configs}))
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "synclip.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env={**os.environ, **ENV}, capture_output=True, text=True)


def shipped_configs() -> dict[str, dict]:
    """Recipe name -> its resolved config, as ``synclip train NAME --print-config`` prints it."""
    cmd = [sys.executable, "-c", DESCRIBE]
    done = subprocess.run(cmd, env={**os.environ, **ENV}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"cannot list the recipes and their configs:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout)
    print(f"synclip from {Path(found['synclip']).parent}")
    return found["configs"]


def emoji_subset(out: Path) -> Path:
    """The first PAIRS Twemoji pairs as a TSV with absolute image paths (as tests/run_helpers.py)."""
    done = cli("data", "emoji")
    match = re.search(r"emoji corpus at (.+) \(", done.stdout)
    if done.returncode or not match:
        raise SystemExit(f"cannot build the emoji corpus:\n{done.stdout}{done.stderr}")
    corpus = Path(match.group(1))
    header, *rows = (corpus / "twemoji.tsv").read_text().splitlines()[: PAIRS + 1]
    fp = header.split("\t").index("filepath")
    fixed = []
    for row in rows:
        cells = row.split("\t")
        cells[fp] = str((corpus / cells[fp]).resolve())
        fixed.append("\t".join(cells))
    out.write_text("\n".join([header, *fixed]) + "\n")
    return out


def overrides(name: str, cfg: dict, tsv: Path, out_dir: Path) -> list[str]:
    """Tiny-run overrides for one recipe; top-level keys reach every stage that does not set its own."""
    train = {**TRAIN, "out_dir": out_dir, "name": name}
    items = [f"train.{k}={v}" for k, v in train.items()] + ["data.workers=0", "eval.at_end=false"]
    if not cfg["model"].get("image_init"):  # weights loaded into the recipe's own tower need that tower
        items.append(f"model.name={TINY_MODEL}")
    sources = cfg["data"]["sources"]
    total = sum(s.get("batch_size") or 0 for s in sources.values())
    for source, spec in sources.items():
        size = max(1, round(BATCH * spec["batch_size"] / total)) if spec.get("batch_size") else None
        if spec["kind"] == "emoji":
            batch = f", batch_size: {size}" if size else ""
            items.append(f"data.sources.{source}={{kind: csv, path: {tsv}, caption_key: caption{batch}}}")
            continue
        if spec["kind"] == "fashion_mnist":
            items.append(f"data.sources.{source}.split=test")
        if size:
            items.append(f"data.sources.{source}.batch_size={size}")
    return items


def encode(value) -> torch.Tensor:
    return torch.tensor(list(json.dumps(value, sort_keys=True, default=repr).encode()), dtype=torch.uint8)


def flatten(checkpoint: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {f"{prefix}model.{k}": v for k, v in checkpoint["model"].items()}
    for k, v in checkpoint["recipe"].items():
        out[f"{prefix}recipe.{k}"] = v if isinstance(v, torch.Tensor) else encode(v)
    for index, state in checkpoint["optimizer"]["state"].items():
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                out[f"{prefix}optimizer.{index}.{k}"] = v
    return out


def train(name: str, cfg: dict, tsv: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Train the recipe in a fresh process; every tensor of its final (and each stage's) checkpoint."""
    with tempfile.TemporaryDirectory(prefix=f"bit_identical_{name}_") as tmp:
        args = overrides(name, cfg, tsv, Path(tmp) / "runs")
        done = cli("train", name, *args, cwd=Path(tmp))
        if done.returncode:
            raise RuntimeError(f"synclip train {name} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        run_dir = Path(tmp) / "runs" / name
        load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731
        tensors = flatten(load(run_dir / "checkpoint.pt"))
        for path in sorted(run_dir.glob("stages/*/checkpoint.pt")):
            tensors |= flatten(load(path), f"stages.{path.parent.name}.")
    return tensors, args


def max_diff(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"{a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
    return f"max abs diff {(a.double() - b.double()).abs().max().item():.3g}"


def optimizer_digest(tensors: dict, prefix: str = "") -> list[tuple[str, str]]:
    """The optimizer tensors as a sorted list of (state name, hash of dtype, shape and bytes): no indices."""
    return sorted(
        (
            k.rsplit(".", 1)[1],
            hashlib.sha1(f"{v.dtype}{list(v.shape)}".encode() + v.numpy().tobytes()).hexdigest(),
        )
        for k, v in tensors.items()
        if k.startswith(f"{prefix}optimizer.")
    )


def compare(name: str, ref: dict, new: dict) -> tuple[bool, str]:
    """Whether every reference tensor is in ``new`` and equal, and a one-line report."""
    missing = [k for k in ref if k not in new]
    extra = [k for k in new if k not in ref]
    differ = [
        k for k in ref if k in new and not (ref[k].dtype == new[k].dtype and torch.equal(ref[k], new[k]))
    ]
    note = f"; {len(extra)} extra (not in the reference): {', '.join(extra[:5])}" if extra else ""
    if not missing and not differ:
        return True, f"{name}: {len(ref)} tensors identical{note}"
    parts = [f"{len(differ)} of {len(ref)} differ"] if differ else []
    parts += [f"{k} ({max_diff(ref[k], new[k])})" for k in differ[:5]]
    prefixes = {k.split("optimizer.")[0] for k in differ if "optimizer." in k}
    if prefixes and all(optimizer_digest(ref, p) == optimizer_digest(new, p) for p in prefixes):
        parts.append(
            "the optimizer tensors are all there under other parameter indices (parameter order changed)"
        )
    if missing:
        parts.append(f"{len(missing)} missing: {', '.join(missing[:5])}")
    return False, f"{name}: DIFFERS: {'; '.join(parts)}{note}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--save", type=Path, metavar="DIR", help="write the reference tensors to DIR/<recipe>.pt"
    )
    mode.add_argument(
        "--compare", type=Path, metavar="DIR", help="train again and compare with DIR/<recipe>.pt"
    )
    parser.add_argument("--recipes", nargs="+", help="only these recipes (default: every shipped recipe)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)

    configs = shipped_configs()
    folder = args.save or args.compare
    if args.save:
        names = args.recipes or list(configs)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        names = args.recipes or sorted(p.stem for p in folder.glob("*.pt"))
        if not names:
            raise SystemExit(f"no references (<recipe>.pt) in {folder}")
        if not args.recipes and set(configs) - set(names):
            print(f"note: no reference for {', '.join(sorted(set(configs) - set(names)))} (not compared)")
    meta_path = folder / "meta.json"  # what the reference was made with: settings, overrides, seconds
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tsv = emoji_subset(Path(tmp) / f"emoji{PAIRS}.tsv")
        for name in names:
            reference = folder / f"{name}.pt"
            problem = "not a shipped recipe" if name not in configs else f"no reference {reference}"
            if name not in configs or (args.compare and not reference.exists()):
                print(f"{name}: FAILED: {problem}")
                ok = False
                continue
            start = time.perf_counter()
            try:
                tensors, used = train(name, configs[name], tsv)
            except RuntimeError as err:
                print(f"{name}: FAILED: {err}")
                ok = False
                continue
            seconds = time.perf_counter() - start
            if args.save:
                torch.save(tensors, reference)
                meta[name] = {"tensors": len(tensors), "seconds": round(seconds, 1), "overrides": used}
                print(f"{name}: saved {len(tensors)} tensors ({seconds:.1f}s)")
            else:
                same, line = compare(
                    name, torch.load(reference, map_location="cpu", weights_only=True), tensors
                )
                print(f"{line} ({seconds:.1f}s)")
                ok &= same
    if args.save:
        versions = {"torch": torch.__version__, "python": sys.version.split()[0]}
        meta["_settings"] = {"train": TRAIN, "pairs": PAIRS, "threads": THREADS, **versions}
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
