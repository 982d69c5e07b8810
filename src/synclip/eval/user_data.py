"""The user's own data as evaluation tasks: an image folder (classification) or a CSV (retrieval).

- ``root/<class>/<image>`` (:class:`synclip.data.sources.ImageFolder`): zero-shot over the folder names
  (``_`` read as a space) or the names of a class-name file, one per line in the folders' sorted
  order; an L-BFGS linear probe and a kNN classifier on a stratified seeded split
  (:mod:`synclip.eval.labelled_tasks`).
- A CSV/TSV of image-text pairs (:class:`synclip.data.sources.CsvImageText` columns): retrieval between
  the unique captions and the unique image paths; rows with the same image path give that image
  several captions, rows with the same caption give the caption several images, and every pair in
  the file is a positive for Recall@k.
- A local Hugging Face dataset (:class:`synclip.data.sources.HFImageText`): the image-folder tasks
  over its label column, retrieval over its caption column, or both.
"""

from __future__ import annotations

from pathlib import Path

import torch

from synclip.data.templates import read_lines
from synclip.eval.labelled_tasks import labelled_tasks
from synclip.eval.task_data import Classification, ImageFiles, Probe, Retrieval, Subset, readable, spread

DEFAULT_TEMPLATES = "openai_imagenet"  # photos of unknown content: CLIP's general-purpose prompts


def image_folder_tasks(
    root: str | Path,
    class_names: str | Path | None = None,
    templates: str = DEFAULT_TEMPLATES,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, Classification | Probe]:
    """``{"image_folder", "linear_probe/image_folder", "knn/image_folder"}`` for ``root``."""
    from synclip.data.sources import ImageFolder

    dataset = ImageFolder(root)
    if len(dataset.classes) < 2 or not len(dataset):
        raise FileNotFoundError(f"{root}: need images in at least two class folders (root/<class>/<image>)")
    kept, bad = readable(dataset, spread(len(dataset), limit))
    if not kept:
        raise ValueError(f"{root}: none of its images can be read, e.g. {'; '.join(bad['examples'][:3])}")
    n_listed = len(dataset)
    dataset.samples = [dataset.samples[i] for i in kept]  # unreadable images skipped, counted in data
    if class_names is None:
        names = [c.replace("_", " ") for c in dataset.classes]
    else:
        names = read_lines(class_names)
        if len(names) != len(dataset.classes):
            raise ValueError(
                f"{class_names} has {len(names)} class names but {root} has {len(dataset.classes)} "
                f"class folders ({', '.join(dataset.classes[:5])}, ...): one name per folder, sorted order"
            )
    data = {
        "source": str(Path(root).resolve()),
        "dataset_classes": list(dataset.classes),
        "class_names_file": None if class_names is None else str(Path(class_names).resolve()),
        "n_listed": n_listed,
        "bad_images": bad,
    }
    labels = [label for _, label in dataset.samples]
    image_set = f"image_folder:{Path(root).resolve()}"  # the disk feature cache tells folders apart
    return labelled_tasks(
        "image_folder",
        dataset,
        labels,
        names,
        templates,
        data,
        None,
        ("lbfgs", "knn"),
        seed,
        image_set=image_set,
    )


def csv_pairs(
    path: str | Path, img_key: str = "filepath", caption_key: str = "title", sep: str | None = None
):
    """(image paths, captions, (T, I) positives) from a CSV/TSV: unique paths in file order, unique
    captions sorted, rows with an empty caption or image path left out. Column and separator defaults
    are open_clip's (``filepath``, ``title``, tab), as for the ``csv`` training source."""
    from synclip.data.sources import CsvImageText

    table = CsvImageText(path, img_key=img_key, caption_key=caption_key, sep=sep)  # checks the columns
    # the parsed (path, caption) cells: reading them opens no image, unlike indexing the dataset;
    # rows with a byte that is not UTF-8 are left out like rows without a caption
    cells = [row for i, row in enumerate(table._rows) if i not in table.undecodable]
    rows = [(image.strip(), caption.strip()) for image, caption in cells]
    rows = [(image, caption) for image, caption in rows if image and caption]
    if not rows:
        raise ValueError(f"{path}: no rows with both an image path and a caption")
    images = list(dict.fromkeys(image for image, _ in rows))
    captions = sorted({caption for _, caption in rows})
    image_at = {image: i for i, image in enumerate(images)}
    caption_at = {caption: t for t, caption in enumerate(captions)}
    positives = torch.zeros(len(captions), len(images), dtype=torch.bool)  # (T, I)
    for image, caption in rows:
        positives[caption_at[caption], image_at[image]] = True
    base = Path(path).parent
    return [base / Path(image).expanduser() for image in images], captions, positives


def csv_task(
    path: str | Path,
    img_key: str = "filepath",
    caption_key: str = "title",
    sep: str | None = None,
    limit: int | None = None,
) -> dict[str, Retrieval]:
    """``{"retrieval/csv": ...}``; ``limit`` keeps that many images spread evenly and their captions."""
    paths, captions, positives = csv_pairs(path, img_key, caption_key, sep)
    keep, bad = readable(ImageFiles(paths), spread(len(paths), limit))
    if not keep:
        raise ValueError(f"{path}: none of its images can be read, e.g. {'; '.join(bad['examples'][:3])}")
    positives = positives[:, keep]  # (T, I')
    used = positives.any(dim=1)  # (T,) captions of a kept image
    positives = positives[used]
    captions = [c for c, u in zip(captions, used.tolist()) if u]
    paths = [paths[i] for i in keep]
    return {
        "retrieval/csv": Retrieval(
            image_set=f"csv:{Path(path).resolve()}" + ("" if limit is None else f"/{len(paths)}"),
            images=ImageFiles(paths),
            captions=captions,
            positives=positives,
            data={
                "source": str(Path(path).resolve()),
                "columns": {"image": img_key, "caption": caption_key},
                "texts": "unique captions",
                "n_texts": len(captions),
                "n_images": len(paths),
                "n_pairs": int(positives.sum()),
                "bad_images": bad,
            },
        )
    }


def hf_dataset_tasks(
    data_dir: str | Path,
    options: dict | None = None,
    templates: str = DEFAULT_TEMPLATES,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, Classification | Probe | Retrieval]:
    """A local Hugging Face dataset (:mod:`synclip.data.sources.hf_dataset`, ``--hf-dataset DIR``).

    With a label column (``label``, or ``--hf-label-key``): ``{"hf_dataset", "linear_probe/hf_dataset",
    "knn/hf_dataset"}`` as for an image folder, prompts from its class names. With a caption column
    (``text``, or ``--hf-caption-key``): ``"retrieval/hf_dataset"`` between the unique captions and the
    images, each row's caption a positive of its image. Both when it has both; all on one encoding of
    the readable rows (``limit`` spread evenly).
    """
    from synclip.data.sources import HFImageText
    from synclip.data.sources.hf_dataset import open_for_eval

    dataset, rows, split, opts = open_for_eval(data_dir, options)
    source = HFImageText(dataset, rows, split)
    if not len(source):
        raise FileNotFoundError(f"--hf-dataset {data_dir}: split {split!r} has no rows")
    kept, bad = readable(source, spread(len(source), limit))
    if not kept:
        raise ValueError(
            f"--hf-dataset {data_dir}: none of its rows can be read, e.g. {'; '.join(bad['examples'][:3])}"
        )
    images = Subset(source, kept)
    image_set = f"hf_dataset:{Path(data_dir).resolve()}:{split}" + ("" if limit is None else f"/{len(kept)}")
    columns = {k: opts[k] for k in ("img_key", "caption_key", "label_key")}
    data = {
        "source": str(Path(data_dir).resolve()),
        "split": split,
        "columns": columns,
        "n_listed": len(source),
        "bad_images": bad,
    }
    tasks: dict = {}
    if rows.label_key is not None:
        values = source.column("label_key")
        labels = [rows.label_of(values[i], str(i)) for i in kept]
        data_l = {**data, "classes": list(rows.classes)}
        tasks.update(
            labelled_tasks(
                "hf_dataset",
                images,
                labels,
                rows.classes,
                templates,
                data_l,
                None,
                ("lbfgs", "knn"),
                seed,
                image_set=image_set,
            )
        )
    if rows.caption_key is not None:
        texts = source.column("caption_key")
        owned = [str(texts[i]).strip() for i in kept]  # (I,) each kept row's caption
        captions = sorted(set(owned))
        at = {c: t for t, c in enumerate(captions)}
        positives = torch.zeros(len(captions), len(kept), dtype=torch.bool)  # (T, I)
        for column, text in enumerate(owned):
            positives[at[text], column] = True
        tasks["retrieval/hf_dataset"] = Retrieval(
            image_set=image_set,
            images=images,
            captions=captions,
            positives=positives,
            data={**data, "texts": "unique captions", "n_texts": len(captions), "n_images": len(kept)},
        )
    return tasks
