"""The training loop: one readable function, from config to a finished run folder."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from synclip import distributed as dist
from synclip.config import RunConfig
from synclip.data.tokenizer import get_tokenizer
from synclip.io import checkpoint as ckpt
from synclip.models import open_clip_state_dict
from synclip.train.accumulate import TrainForward, accumulate_backward
from synclip.train.data import pretrainer_loaders
from synclip.train.fsdp import average_replicated_grads, clip_grad_norm
from synclip.train.logging import MetricsLogger
from synclip.train.optim import cosine_lr, create_optimizer, set_lr, warmup_warning
from synclip.train.plots import plot_training_curves
from synclip.train.run_folder import release_run_folder
from synclip.train.setup import (
    apply_tower_normalisation,
    build_pretrainer,
    init_distributed,
    prepare_run_dir,
    resolve_device,
    run_dir_for,
    seed_everything,
    sync_batchnorm,
)
from synclip.train.stages import train_stages
from synclip.train.validation import PeriodicEval


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class TooManyBadSamples(RuntimeError):
    """More than ``data.max_bad_fraction`` of the samples could not be read."""


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def train(cfg: RunConfig) -> Path:
    """Train ``cfg``'s recipe; returns the run folder (checkpoint.pt, metrics.jsonl, tensorboard/, plots/).

    A recipe with ``stages`` trains each stage in turn (:mod:`synclip.train.stages`).
    """
    if cfg.stages:
        return train_stages(cfg, train)
    try:
        return _train(cfg)
    finally:
        release_run_folder(run_dir_for(cfg))  # taken in prepare_run_dir; the OS drops it if we are killed


def _train(cfg: RunConfig) -> Path:
    t = cfg.train
    device = resolve_device(t.device)
    init_distributed(device)
    if t.precision == "fp16" and device.type != "cuda":
        raise ValueError("train.precision=fp16 needs CUDA; use bf16 on the CPU")
    seed_everything(t.seed)
    apply_tower_normalisation(cfg)  # before config.json: the views normalise as the loaded tower expects
    run_dir = prepare_run_dir(cfg)
    pretrainer = build_pretrainer(cfg)
    sharding = t.fsdp and dist.world_size() > 1  # FSDP2 moves each unit's shard to the device itself
    pretrainer = sync_batchnorm(pretrainer if sharding else pretrainer.to(device), device)
    model = pretrainer.model
    tokenizer = get_tokenizer(model.context_length, model.tokenizer_file)
    data = pretrainer_loaders(cfg, pretrainer, tokenizer, t.accum_steps, device.type == "cuda")
    steps_per_epoch = data.steps_per_epoch
    total_steps = max(1, round(t.epochs * steps_per_epoch))  # epochs may be a fraction
    last_step = min(total_steps, t.max_steps or total_steps)
    warmup_note = warmup_warning(t.warmup_steps, last_step, t.lr)
    if warmup_note and dist.is_main():
        print(warmup_note, file=sys.stderr)

    if sharding:  # FSDP2 replaces the parameters by shards: before the optimizer is built
        wrapped = wrap_sharded(pretrainer, device, t.precision, t.compile)
    optimizer = create_optimizer(
        pretrainer, t.lr, t.weight_decay, (t.beta1, t.beta2), t.eps, decoupled=t.decoupled_weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")
    step, bad = 0, {"n_bad": 0, "n_items": 0, "examples": []}
    if t.resume:
        path = run_dir / "checkpoint.pt" if t.resume == "auto" else Path(t.resume)
        if path.exists() or t.resume != "auto":
            step, bad = _restore(path, pretrainer, optimizer, scaler, sharding)
    dist.barrier()  # every rank has read the checkpoint before rank 0 may write the next one
    if not sharding:
        wrapped = wrap(pretrainer, device, t.compile, t.find_unused_parameters)

    logger = MetricsLogger(run_dir, start_step=step) if dist.is_main() else None
    validation = PeriodicEval(cfg, model, tokenizer, device, logger)
    bar = tqdm(total=last_step, initial=step, disable=not (t.progress and dist.is_main()), desc=cfg.recipe)
    state = {
        "pretrainer": pretrainer,
        "optimizer": optimizer,
        "scaler": scaler,
        "cfg": cfg,
        "run_dir": run_dir,
    }
    pretrainer.train()
    window_pairs, window_start = 0, time.perf_counter()
    # data wait: time the loop spends asking the loader for the next batch (benchmarks/gpu_check.sh)
    waited, fetched = 0.0, time.perf_counter()
    main_samples = data.loaders[data.main].num_samples
    batch_sizes = {name: loader.batch_size for name, loader in data.loaders.items()}
    try:
        while step < last_step:
            epoch, start_batch = divmod(step, steps_per_epoch)
            for batch in data.epoch(epoch, start_batch):
                waited += time.perf_counter() - fetched
                short = _count_bad(batch, bad, cfg.data.max_bad_fraction, main_samples, batch_sizes)
                main = batch[data.main]
                if short:  # a rank's batch lost samples that could not be replaced: all ranks skip it
                    step += 1
                    continue
                moved = time.perf_counter()
                batch = data.to_device(batch, device)  # batched path: image views augmented here
                waited += (
                    time.perf_counter() - moved
                )  # data time too (on CUDA: the copies' and kernels' launch)
                set_lr(optimizer, cosine_lr(step, t.lr, t.warmup_steps, total_steps))
                pretrainer.set_progress(step, total_steps)  # EMA schedules, late objectives
                optimizer.zero_grad(set_to_none=True)

                def check(out, step=step):
                    _check_finite(out, step, run_dir)

                def backward(loss):
                    scaler.scale(loss).backward()

                amp = lambda: autocast(device, t.precision)  # noqa: E731
                if t.accum_steps > 1:
                    out = accumulate_backward(wrapped, pretrainer, batch, t.accum_steps, backward, amp, check)
                else:
                    with amp():
                        out = wrapped(batch)
                    check(out)
                    backward(out["loss"])
                if sharding:  # FSDP2 reduced the shards' gradients; the scalars' are averaged here
                    average_replicated_grads(pretrainer)
                if t.grad_clip_norm:
                    scaler.unscale_(optimizer)
                    clip = clip_grad_norm if sharding else torch.nn.utils.clip_grad_norm_
                    clip(pretrainer.parameters(), t.grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
                pretrainer.post_step()
                step += 1
                window_pairs += main["size"] * dist.world_size()
                bar.update(1)
                if step % t.log_every == 0 or step == last_step:
                    elapsed = time.perf_counter() - window_start
                    rate = window_pairs / elapsed
                    scalars = _global_scalars(out)
                    scalars |= {"lr": optimizer.param_groups[0]["lr"], "pairs_per_s": rate, "epoch": epoch}
                    # fraction of the window spent waiting for data (on CUDA it overlaps queued GPU work)
                    scalars["data_wait_frac"] = min(1.0, waited / elapsed)
                    scalars["bad_samples"] = bad["n_bad"]
                    bar.set_postfix(loss=f"{scalars['loss']:.3f}", pairs_s=f"{rate:.0f}")
                    if logger:
                        logger.log(step, scalars)
                    window_pairs, window_start, waited = 0, time.perf_counter(), 0.0
                if validation.due(step, steps_per_epoch):
                    validation.run(step)
                    window_start, waited = time.perf_counter(), 0.0  # the window leaves the evaluation out
                epoch_file = _epoch_checkpoint(step, steps_per_epoch, t.save_every)
                if (step % t.checkpoint_every == 0 or epoch_file) and step < last_step:
                    _save(state, step, bad, finished=False, epoch_file=epoch_file)
                fetched = time.perf_counter()
                if step >= last_step:
                    break
        _save(
            state, step, bad, finished=True, epoch_file=_epoch_checkpoint(step, steps_per_epoch, t.save_every)
        )
        dist.barrier()  # no rank returns (and, say, evaluates) before the final checkpoint exists
    finally:
        bar.close()
        if logger:
            logger.close()
    if dist.is_main():
        from synclip.io import atomic_write_text

        atomic_write_text(run_dir / "data_quality.json", json.dumps(bad, indent=2))
        plot_training_curves(run_dir)
    return run_dir


def _parts(out: dict) -> str:
    return ", ".join(f"{k}={v.item():.4g}" for k, v in out.items() if v.numel() == 1)


def wrap(pretrainer, device: torch.device, compile: bool, find_unused: bool | None) -> torch.nn.Module:
    """The training forward, compiled when asked and wrapped in DDP with several ranks.

    DDP must be told when parameters may get no gradient in a step (see :meth:`synclip.recipe.Recipe.may_leave_unused`).
    """
    forward = TrainForward(pretrainer)
    if dist.world_size() > 1:
        if find_unused is None:
            find_unused = pretrainer.recipe.may_leave_unused()
        forward = torch.nn.parallel.DistributedDataParallel(
            forward,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused,
        )
    if compile:
        forward = torch.compile(forward)
    return forward


def wrap_sharded(pretrainer, device: torch.device, precision: str, compile: bool) -> torch.nn.Module:
    """The training forward with the towers sharded by FSDP2 over ``device`` (:mod:`synclip.train.fsdp`),
    compiled when asked. ``pretrainer`` may still be on the CPU: only shards reach the device."""
    from synclip.train.fsdp import shard

    forward = shard(TrainForward(pretrainer), device, precision)
    return torch.compile(forward) if compile else forward


def _check_finite(out: dict, step: int, run_dir: Path) -> None:
    """Raise on every rank together when any rank's loss is NaN or infinite."""
    loss = out["loss"]
    bad = dist.all_reduce_sum((~torch.isfinite(loss.detach())).float())
    if bad.item() > 0:
        raise NonFiniteLoss(
            f"loss is {loss.item()} at step {step} ({_parts(out)}); the last good checkpoint in "
            f"{run_dir} is intact. Lower train.lr, raise train.warmup_steps or use train.precision=fp32"
        )


def _global_scalars(out: dict) -> dict[str, float]:
    """Scalar outputs averaged over ranks (one all_reduce)."""
    names = [k for k, v in out.items() if v.numel() == 1]
    values = torch.stack([out[k].detach().float().reshape(()) for k in names])  # (n,)
    values = dist.all_reduce_sum(values) / dist.world_size()
    return dict(zip(names, values.tolist()))


def _count_bad(
    batch: dict, bad: dict, max_fraction: float, dataset_size: int, expected: dict[str, int]
) -> bool:
    """Accumulate bad-sample counts over all ranks; stop (every rank) once over the limit.

    Returns True when some rank's batch came up short (bad samples that could not be replaced), in
    which case every rank skips the step so that gathered shapes stay equal.
    """
    n_bad = sum(source.get("n_bad", 0) for source in batch.values())
    n_items = sum(source.get("n_items", 0) for source in batch.values())
    short = sum(int(batch[name].get("size", 0) < expected[name]) for name in batch)
    counts = dist.all_reduce_sum(torch.tensor([n_bad, n_items, short], dtype=torch.float64))
    bad["n_bad"] += int(counts[0])
    bad["n_items"] += int(counts[1])
    for source in batch.values():
        for key, reason in source.get("bad", []):
            if len(bad["examples"]) < 20:
                bad["examples"].append(f"{key}: {reason}")
    seen_enough = bad["n_items"] >= min(dataset_size, 1000)
    if seen_enough and bad["n_bad"] > max_fraction * bad["n_items"]:
        raise TooManyBadSamples(
            f"{bad['n_bad']} of {bad['n_items']} samples could not be used (limit data.max_bad_fraction="
            f"{max_fraction}); for example: {'; '.join(bad['examples'][:5])}"
        )
    return counts[2].item() > 0


def _epoch_checkpoint(step: int, steps_per_epoch: int, save_every: int | None) -> str | None:
    """``epoch_N.pt`` when ``step`` ends epoch N and N is a multiple of ``train.save_every``, else None."""
    epoch, within = divmod(step, steps_per_epoch)
    if save_every and within == 0 and epoch > 0 and epoch % save_every == 0:
        return f"epoch_{epoch}.pt"
    return None


def epoch_checkpoints(run_dir: Path) -> list[Path]:
    """The run folder's ``epoch_N.pt`` files, oldest epoch first."""
    found = []
    for path in Path(run_dir).glob("epoch_*.pt"):
        number = path.stem.removeprefix("epoch_")
        if number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def _save(state: dict, step: int, bad: dict, finished: bool, epoch_file: str | None = None) -> None:
    """Write the resumable ``checkpoint.pt``; with ``epoch_file``, the same state to that name too,
    then delete the oldest epoch files beyond ``train.keep_last``. With ``train.fsdp`` every rank writes
    its shards (:mod:`synclip.io.sharded`)."""
    if state["cfg"].train.fsdp:
        return _save_sharded(state, step, bad, finished, epoch_file)
    if not dist.is_main():
        return
    pretrainer = state["pretrainer"]
    payload = {
        "format": ckpt.FORMAT,
        "model_name": pretrainer.model.name,
        "model": open_clip_state_dict(pretrainer.model, pretrainer.recipe.export_state()),
        "recipe": pretrainer.recipe.state_dict(),
        "heads": pretrainer.recipe.heads(),
        "exported": sorted(pretrainer.recipe.export_state()),  # keys of "model" beside the towers
        "optimizer": state["optimizer"].state_dict(),
        **_progress_state(state, step, bad, finished),
    }
    run_dir = state["run_dir"]
    ckpt.save_atomic(payload, run_dir / "checkpoint.pt")
    if epoch_file is not None:
        ckpt.save_atomic(payload, run_dir / epoch_file)
        _keep_last(run_dir, state["cfg"].train.keep_last)


def _progress_state(state: dict, step: int, bad: dict, finished: bool) -> dict:
    """The keys every checkpoint, whole or sharded, carries to resume: scaler, step, finished, bad
    samples, RNG states and the config."""
    return {
        "scaler": state["scaler"].state_dict(),
        "step": step,
        "finished": finished,
        "bad_samples": bad,
        "rng": ckpt.rng_state(),
        "config": state["cfg"].to_dict(),
    }


def _keep_last(run_dir: Path, keep: int | None) -> None:
    if keep is not None and dist.is_main():
        for old in epoch_checkpoints(run_dir)[:-keep]:
            old.unlink()


def _save_sharded(state: dict, step: int, bad: dict, finished: bool, epoch_file: str | None) -> None:
    from synclip.train.sharded_checkpoint import remove_unreferenced, save_sharded

    meta = {"format": ckpt.FORMAT, **_progress_state(state, step, bad, finished)}
    run_dir = state["run_dir"]
    names = ["checkpoint.pt"] + ([epoch_file] if epoch_file else [])
    save_sharded(run_dir, state["pretrainer"], state["optimizer"], meta, names)
    _keep_last(run_dir, state["cfg"].train.keep_last)
    remove_unreferenced(run_dir)


def _restore(path: Path, pretrainer, optimizer, scaler, sharding: bool = False) -> tuple[int, dict]:
    state = ckpt.read_synclip_checkpoint(path, consolidate=False)
    if "shards" in state:  # written with train.fsdp: each rank reads its slice, on any number of ranks
        from synclip.train.sharded_checkpoint import load_sharded

        load_sharded(path, state, pretrainer, optimizer)
        return _restore_rest(state, scaler)
    if sharding:  # a whole checkpoint (DDP, one process) continued sharded
        from synclip.train.sharded_checkpoint import load_whole_into_sharded

        load_whole_into_sharded(state, pretrainer, optimizer)
        return _restore_rest(state, scaler)
    exported = set(pretrainer.recipe.export_state()) | {"logit_scale"}  # beside the towers, not in them
    model_state = {k: v for k, v in state["model"].items() if k not in exported}
    try:
        pretrainer.model.load_state_dict(model_state)
        pretrainer.recipe.load_state_dict(state["recipe"])
    except RuntimeError as err:
        raise ckpt.CheckpointError(
            f"{path} was written for model {state.get('model_name')!r} with recipe objectives "
            f"{sorted(state['config']['objectives'])}, which do not fit this run: {str(err)[:300]}"
        ) from err
    optimizer.load_state_dict(state["optimizer"])
    return _restore_rest(state, scaler)


def _restore_rest(state: dict, scaler) -> tuple[int, dict]:
    scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    return int(state["step"]), state["bad_samples"]
