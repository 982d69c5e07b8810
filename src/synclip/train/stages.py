"""Training a multi-stage recipe: each stage of :func:`synclip.config.stages.stage_configs` in turn.

How stages are written, merged and referred to (``stage:<name>``) is documented in
:mod:`synclip.config.stages`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synclip import distributed as dist
from synclip.config import RunConfig, run_dir_for, stage_configs
from synclip.io.checkpoint import read_synclip_checkpoint


def train_stages(cfg: RunConfig, train: Callable[[RunConfig], Path]) -> Path:
    """Train every stage in order with ``train`` (one stage's run); returns the last stage's folder."""
    run_dir = None
    for name, stage_cfg in stage_configs(cfg):
        folder = run_dir_for(stage_cfg)
        checkpoint = folder / "checkpoint.pt"
        if cfg.train.resume and checkpoint.exists() and read_synclip_checkpoint(checkpoint).get("finished"):
            if dist.is_main():
                print(f"stage {name}: finished earlier in {folder}, not trained again")
            run_dir = folder
            continue
        if dist.is_main():
            print(f"== stage {name} -> {folder}")
        run_dir = train(stage_cfg)
    return run_dir
