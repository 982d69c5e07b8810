"""Guards of a run folder: one process at a time, and no leftovers of a killed one.

:func:`lock_run_folder` takes an exclusive ``flock`` on ``<run>/.lock``. The operating system drops
the lock when its process ends in any way (``kill -9`` included), so a crashed run never blocks its
own ``--resume``, while a second ``synclip train`` (or ``--resume``) on a folder in use stops with
:class:`RunFolderInUse` before it writes anything. :func:`remove_stale_temporaries` deletes the
temporary files of atomic writes (:func:`synclip.io.atomic_write`: ``.checkpoint.pt.tmp-<pid>-<id>``;
older ones ``.checkpoint.pt.tmp-<pid>``, ``.eval.json.<pid>.tmp``) whose writing process is gone.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded
    fcntl = None

LOCK_NAME = ".lock"
_TEMPORARY = re.compile(r"^\..+\.(?:tmp-(\d+)(?:-[0-9a-f]+)?|(\d+)\.tmp)$")
_HELD: dict[Path, int] = {}  # run folder -> file descriptor of the lock this process holds


class RunFolderInUse(RuntimeError):
    """Another live process holds the run folder's lock."""


def lock_run_folder(run_dir: Path) -> None:
    """Lock ``run_dir`` (created if needed) for this process until :func:`release_run_folder`."""
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if fcntl is None:
        return
    if key in _HELD:
        raise RunFolderInUse(_in_use(run_dir, os.getpid()))
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise RunFolderInUse(_in_use(run_dir, holder or "unknown")) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[key] = fd


def release_run_folder(run_dir: Path) -> None:
    """Release this process's lock on ``run_dir``, if it holds one."""
    fd = _HELD.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _in_use(run_dir: Path, pid) -> str:
    return (
        f"run folder {run_dir} is in use by another synclip process (pid {pid}); wait for it to finish "
        "(or stop it) and then --resume, or pick another train.name"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete ``run_dir``'s temporary files of atomic writes whose process is gone; returns them."""
    removed = []
    for path in sorted(Path(run_dir).iterdir()):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _alive(int(match.group(1) or match.group(2))):
            path.unlink(missing_ok=True)
            removed.append(path)
            print(f"warning: removed {path}, left half-written by a killed process", file=sys.stderr)
    return removed
