"""Two processes on one run folder, and what a killed process leaves behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.train.run_folder import remove_stale_temporaries

SRC = str(Path(__file__).parents[2] / "src")


def _python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)


def _wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """A process that locks ``run_dir`` as a training run does, says so, then sleeps."""
    holder = _python(
        "import time, sys\nfrom synclip.train.run_folder import lock_run_folder\n"
        f"lock_run_folder({str(run_dir)!r})\nprint('locked', flush=True)\ntime.sleep(600)\n"
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_on_a_folder_in_use_is_refused_and_a_killed_one_does_not_block(cli, tmp_path, run_args):
    run_dir = tmp_path / "runs" / "clip-s0"
    holder = _hold_lock(run_dir)
    try:
        for extra in ([], ["--resume"]):
            code, _, err = cli("train", "clip", *run_args(**{"train.max_steps": 1}), *extra)
            assert (
                code == 2
                and f"run folder {run_dir} is in use by another synclip process (pid {holder.pid})" in err
            )
        assert not (run_dir / "config.json").exists() and not (run_dir / "checkpoint.pt").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, _, err = cli("train", "clip", *run_args(**{"train.max_steps": 1}))
    assert code == 0, err
    assert read_synclip_checkpoint(run_dir / "checkpoint.pt")["finished"]


WRITER = """
import sys, torch
from synclip.io import checkpoint as ckpt
path, i = sys.argv[1], 0
while True:
    i += 1
    ckpt.save_atomic({"format": ckpt.FORMAT, "step": i, "w": torch.full((4_000_000,), float(i))}, path)
    print(i, flush=True)
"""


@pytest.mark.parametrize("after", [1, 3])
def test_kill_during_checkpoint_writes_leaves_the_last_checkpoint_loadable(tmp_path, after):
    path = tmp_path / "checkpoint.pt"
    env = {**os.environ, "PYTHONPATH": SRC}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    for _ in range(after):
        written = int(writer.stdout.readline())
    time.sleep(0.03)  # most likely inside the next torch.save
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    state = read_synclip_checkpoint(path)
    assert state["step"] >= written and bool((state["w"] == state["step"]).all())
    (tmp_path / f".checkpoint.pt.tmp-{writer.pid}").write_bytes(b"half")  # as if killed mid-write
    (tmp_path / f".eval.json.{os.getpid()}.tmp").write_text("{")  # a live process's: kept
    removed = {p.name for p in remove_stale_temporaries(tmp_path)}
    assert f".checkpoint.pt.tmp-{writer.pid}" in removed  # and the one the killed write left, if any
    assert all(name.startswith(f".checkpoint.pt.tmp-{writer.pid}") for name in removed)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".checkpoint.pt.tmp-{writer.pid}")]
    assert (tmp_path / f".eval.json.{os.getpid()}.tmp").exists()


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_cleanly(emoji_subset, tmp_path, cli, run_args):
    """kill -9 after some checkpoints; the half-written metrics line and temporaries go, resume finishes."""
    args = run_args(**{"train.checkpoint_every": 1, "train.log_every": 1, "train.epochs": 3})
    env = {**os.environ, "PYTHONPATH": SRC}
    run = subprocess.Popen([sys.executable, "-m", "synclip.cli", "train", "clip", *args], env=env)
    run_dir = tmp_path / "runs" / "clip-s0"
    _wait_for(lambda: (run_dir / "checkpoint.pt").exists() and (run_dir / "metrics.jsonl").stat().st_size > 0)
    time.sleep(1.0)
    run.send_signal(signal.SIGKILL)
    run.wait()
    step = read_synclip_checkpoint(run_dir / "checkpoint.pt")["step"]
    assert 0 < step < 24
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "loss": 1.2')  # a line cut short by the kill
    (run_dir / f".checkpoint.pt.tmp-{run.pid}").write_bytes(b"PK\x03\x04 cut")
    code, _, err = cli("train", "clip", *args, "--resume")
    assert code == 0, err
    assert "metrics.jsonl line" in err and f".checkpoint.pt.tmp-{run.pid}" in err
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    assert state["finished"] and state["step"] == 24
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 24
    assert not list(run_dir.glob(".*.tmp*"))
