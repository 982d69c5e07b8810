"""Standard benchmarks from local copies, with CLIP_benchmark's class names, prompts and loaders.

``synclip eval CKPT --benchmark NAME --data-root DIR``:

- ``imagenet1k``: ``DIR`` in torchvision's ImageFolder layout, one folder per WordNet id
  (``DIR/n01440764/*.JPEG``, or ``DIR/val/...``): 1,000 folders whose sorted order is ImageNet's class
  order. Zero-shot top-1/top-5 with CLIP's 1,000 class names and 80 prompts as the ``clip-benchmark``
  package ships them (no hand-written table in synclip).
- ``wds/<name>``: CLIP_benchmark's webdataset format in a local folder (``DIR/test/nshards.txt``,
  ``DIR/test/0.tar`` ..., ``classnames.txt``, ``zeroshot_classification_templates.txt``, and
  ``dataset_type.txt`` = ``retrieval`` for image-caption sets), read by CLIP_benchmark's own builder:
  zero-shot classification, or retrieval with every (image, caption) pair a positive, as
  CLIP_benchmark scores it.
- any other CLIP_benchmark dataset name (``cifar10``, ``mnist``, ``flickr30k`` ...): its builder over
  ``DIR`` with downloads off, so the data must already be there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from synclip.data.templates import clip_benchmark_table
from synclip.eval.task_data import Classification, Retrieval, spread

IMAGENET_CLASSES = 1000


def benchmark_tasks(name: str, root: str | Path, limit: int | None = None) -> dict:
    """``{result name: Classification | Retrieval}`` for CLIP_benchmark dataset ``name`` under ``root``."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"benchmark data root (--data-root) {root} does not exist")
    if name == "imagenet1k":
        return _imagenet_folder(root, limit)
    return _clip_benchmark_dataset(name, root, limit)


def _imagenet_folder(root: Path, limit: int | None) -> dict:
    from synclip.data.sources import ImageFolder

    folder = root / "val" if (root / "val").is_dir() else root
    dataset = ImageFolder(folder)
    if len(dataset.classes) != IMAGENET_CLASSES:
        raise ValueError(
            f"{folder} has {len(dataset.classes)} class folders; ImageNet-1k needs all {IMAGENET_CLASSES} "
            "(one per WordNet id, e.g. n01440764, in torchvision's ImageFolder layout)"
        )
    index = spread(len(dataset), limit)
    labels = [dataset.samples[i][1] for i in index]
    return {
        "imagenet1k": Classification(
            image_set=f"imagenet1k:{folder.resolve()}",
            images=dataset,
            index=index,
            labels=labels,
            class_names=clip_benchmark_table("classnames", "imagenet1k"),
            templates="clip_benchmark:imagenet1k",
            data={"source": str(folder.resolve()), "benchmark": "imagenet1k", "n": len(index)},
        )
    }


def _identity(x):
    return x


def _clip_benchmark_dataset(name: str, root: Path, limit: int | None) -> dict:
    try:
        from clip_benchmark.datasets.builder import build_dataset, get_dataset_default_task
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"benchmark {name!r} needs the clip-benchmark package: pip install 'synclip[benchmark]'"
        ) from None
    task = "zeroshot_classification"
    if name.startswith("wds/"):
        kind = root / "dataset_type.txt"
        if kind.is_file() and kind.read_text().strip().lower() == "retrieval":
            task = "zeroshot_retrieval"
    else:
        task = get_dataset_default_task(name)
    if task not in ("zeroshot_classification", "zeroshot_retrieval"):
        raise ValueError(f"benchmark {name!r}: task {task!r} is not one synclip scores")
    dataset = build_dataset(
        name, root=str(root), transform=_identity, split="test", download=False, task=task
    )
    pairs = list(dataset)  # (PIL image, label or captions): a local test split, read once
    keep = spread(len(pairs), limit)
    images = [pairs[i][0] for i in keep]
    short = name.split("/", 1)[-1]
    data = {"source": str(root.resolve()), "benchmark": name, "n": len(images), "reader": "clip_benchmark"}
    image_set = f"benchmark:{name}:{root.resolve()}" + ("" if limit is None else f"/{len(images)}")
    if task == "zeroshot_retrieval":
        captions, owner = [], []  # one row per (image, caption) pair, as CLIP_benchmark counts them
        for column, i in enumerate(keep):
            for caption in pairs[i][1]:
                captions.append(caption)
                owner.append(column)
        positives = torch.zeros(len(captions), len(images), dtype=torch.bool)  # (T, I)
        positives[torch.arange(len(captions)), torch.tensor(owner, dtype=torch.long)] = True
        return {f"retrieval/{short}": Retrieval(image_set, images, captions, positives, data)}
    templates = ["{}".join(t.split("{c}")) for t in dataset.templates]
    labels = [int(pairs[i][1]) for i in keep]
    return {
        short: Classification(
            image_set=image_set,
            images=images,
            index=list(range(len(images))),
            labels=labels,
            class_names=list(dataset.classes),
            templates=_templates_file(name, templates),
            data=data,
        )
    }


def _templates_file(name: str, templates: list[str]) -> str:
    """The dataset's own templates as a file (a zero-shot task names its templates by set or file)."""
    import hashlib

    from synclip.data.cache import cache_dir
    from synclip.io import atomic_write_text

    text = "\n".join(templates) + "\n"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_dir() / "benchmark_templates" / f"{name.replace('/', '_')}-{key}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return str(path)
