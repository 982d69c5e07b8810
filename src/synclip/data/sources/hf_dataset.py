"""The ``hf_dataset`` source: a Hugging Face ``datasets`` dataset on local disk, map-style or streamed.

``data_dir`` is read with ``datasets.load_dataset(format, data_dir=data_dir, split=split)``: ``format``
is a packaged builder (``imagefolder``: ``DIR/<split>/<class>/<image>``, with an optional
``metadata.csv``/``metadata.jsonl`` giving each ``file_name`` more columns such as ``text``;
``parquet``; ``arrow``), or null to let ``datasets`` infer it from the files. A folder written by
``Dataset.save_to_disk`` is read with ``datasets.load_from_disk``. With ``streaming`` the dataset is a
``datasets.IterableDataset`` that :class:`synclip.data.hf_stream.HFStream` reads per rank and worker
(as webdataset shards are); without it, a map-style :class:`HFImageText` that the trainer's seeded
sampler indexes like any other source.

Columns (defaults ours, after the names ``imagefolder`` gives and the ``text`` column of its captioning
layout): ``img_key`` (``image``: an Image feature, or a string path relative to ``data_dir``),
``caption_key`` (``text``; null for a labelled set without captions, whose class names then become
prompted captions as for an image folder) and ``label_key`` (null; e.g. ``label``, the ClassLabel
column ``imagefolder`` makes from the class folders). Class names come from a ClassLabel feature, else
from ``classes`` (names in label order, or the list of string values), else, for a map-style string
column, its sorted distinct values.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from synclip.data.images import BadSample, load_rgb, to_rgb
from synclip.data.sources.base import register_source

FORMATS = ("imagefolder", "parquet", "arrow")  # the local formats documented; any packaged builder passes
HF_EXTRA = "pip install 'synclip[hf]'"
ROW_BLOCK = 64  # rows read at a time from a stream (``IterableDataset.iter``)


def import_datasets():
    """The ``datasets`` module, or a ModuleNotFoundError saying which synclip extra installs it."""
    try:
        import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"reading a Hugging Face dataset needs the `datasets` package: {HF_EXTRA} (or pip install datasets)"
        ) from None
    return datasets


def _pick_split(loaded, split: str | None, where: str):
    """One split of a DatasetDict-like ``loaded``: ``split``, or the only one / ``test`` when None."""
    names = list(loaded)
    if split is None:
        if len(names) == 1:
            split = names[0]
        else:
            split = next((s for s in ("test", "validation") if s in names), None)
            if split is None:
                raise ValueError(f"{where}: which split? it has {names}; name one with split=")
    if split not in names:
        raise ValueError(f"{where}: no split {split!r}; it has {names}")
    return loaded[split], split


def open_hf(
    data_dir: str | Path,
    format: str | None = None,
    split: str | None = "train",
    streaming: bool = False,
    data_files=None,
    cache_dir: str | None = None,
    where: str = "hf_dataset",
):
    """``(dataset, split name)``: a ``datasets.Dataset`` (or ``IterableDataset`` when ``streaming``)
    of ``split`` (None: the only split, else ``test``, else ``validation``) read from ``data_dir``."""
    datasets = import_datasets()
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{where}: Hugging Face dataset folder {root} does not exist")
    if (root / "state.json").is_file() or (root / "dataset_dict.json").is_file():  # save_to_disk
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, datasets.DatasetDict):
            loaded, split = _pick_split(loaded, split, where)
        if streaming:
            loaded = loaded.to_iterable_dataset(num_shards=max(1, len(loaded.cache_files)))
        return loaded, split or "train"
    options = {"data_files": data_files, "streaming": streaming, "cache_dir": cache_dir}
    path, options["data_dir"] = (format, str(root)) if format else (str(root), None)
    try:
        loaded = datasets.load_dataset(path, **options)  # every split: lists them for a clear error
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(
            f"{where}: datasets.load_dataset({path!r}, data_dir={str(root)!r}) failed: {err} "
            f"(format= one of {', '.join(FORMATS)} or null to infer it from the files)"
        ) from None
    return _pick_split(loaded, split, where)


def columns_of(dataset) -> list[str] | None:
    """The dataset's column names, or None when a stream does not know its features."""
    return None if dataset.features is None else list(dataset.features)


def check_column(
    columns: list[str] | None, option: str, column: str | None, where: str, hint: str = ""
) -> None:
    """ValueError naming the missing ``column`` of option ``option`` and the columns there are."""
    if column is None or columns is None or column in columns:
        return
    raise ValueError(
        f"{where}: no column {column!r} ({option}); the dataset's columns are {columns}. "
        f"Set {option}= to one of them.{hint}"
    )


def class_names(
    dataset, label_key: str, classes: list | None, map_style: bool, where: str
) -> tuple[list[str], bool]:
    """``(class names in label order, whether the column holds the names themselves)``."""
    from datasets import ClassLabel

    feature = dataset.features[label_key] if dataset.features is not None else None
    if isinstance(feature, ClassLabel):
        names, by_name = list(feature.names), False
    elif getattr(feature, "dtype", None) in ("string", "large_string"):
        if classes is None and not map_style:
            raise ValueError(
                f"{where}: a streamed label column of strings ({label_key!r}) has no class list; "
                "set classes=[name, ...] (the label ids follow that order)"
            )
        names, by_name = (sorted({str(v) for v in dataset[label_key]}) if classes is None else None), True
    else:
        if classes is None:
            raise ValueError(
                f"{where}: label column {label_key!r} ({feature}) has no class names; set "
                "classes=[name, ...] in label order"
            )
        names, by_name = None, False
    if classes is not None:
        if not isinstance(classes, list) or (
            names is not None and not by_name and len(classes) != len(names)
        ):
            count = f"the {len(names)} " if names is not None and not by_name else ""
            raise ValueError(
                f"{where}: classes must be a list of {count}class names in label order, got {classes!r}"
            )
        names = [str(c) for c in classes]
    return names, by_name


class HFRows:
    """Turns one row of a Hugging Face dataset (images not decoded) into a source sample.

    Samples: ``{"image", "key"}`` plus ``"caption"`` (``caption_key``) and ``"label"``,
    ``"class_name"`` (``label_key``); an unreadable image, an empty caption or an unknown label raises
    :class:`BadSample`.
    """

    def __init__(
        self,
        img_key: str,
        caption_key: str | None,
        label_key: str | None,
        classes: list[str] | None,
        labels_by_name: bool = False,
        base: Path | None = None,
        max_caption_chars: int = 1000,
    ):
        self.img_key, self.caption_key, self.label_key = img_key, caption_key, label_key
        self.classes, self.labels_by_name = classes, labels_by_name
        self._ids = {name: i for i, name in enumerate(classes or [])}
        self.base, self.max_caption_chars = base, max_caption_chars

    def image_key(self, row: dict) -> str | None:
        """The image's path as the dataset stores it (None for bytes without a name)."""
        value = row[self.img_key]
        return value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None

    def sample(self, row: dict, key: str) -> dict:
        value = row[self.img_key]
        if isinstance(value, str):  # a path column
            image = load_rgb(Path(value) if self.base is None else self.base / value, key)
        elif isinstance(value, dict) and value.get("bytes") is not None:
            image = _decode_bytes(value["bytes"], key)
        elif isinstance(value, dict) and value.get("path"):
            image = load_rgb(value["path"], key)
        else:
            raise BadSample("missing_file", key, f"no image in column {self.img_key!r}")
        sample = {"image": image, "key": key}
        if self.caption_key is not None:
            caption = str(row[self.caption_key] or "").strip()
            if not caption:
                raise BadSample("empty_caption", key)
            if len(caption) > self.max_caption_chars:
                raise BadSample("caption_too_long", key, f"{len(caption)} chars")
            sample["caption"] = caption
        if self.label_key is not None:
            label = self.label_of(row[self.label_key], key)
            sample.update(label=label, class_name=self.classes[label])
        return sample

    def label_of(self, value, key: str) -> int:
        if value is None:
            raise BadSample("no_label", key, f"empty {self.label_key!r}")
        if self.labels_by_name:
            if str(value) not in self._ids:
                raise BadSample("unknown_label", key, f"{value!r} is not among classes")
            return self._ids[str(value)]
        if not 0 <= int(value) < len(self.classes):
            raise BadSample("unknown_label", key, f"label {value} outside 0..{len(self.classes) - 1}")
        return int(value)


def _decode_bytes(data: bytes, key: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = to_rgb(img)
            return img.copy() if rgb is img else rgb
    except Exception as err:  # any decoder failure on untrusted bytes
        raise BadSample("corrupt_image", key, f"{type(err).__name__}: {err}") from err


def prepared(dataset, opts: dict, map_style: bool, where: str) -> tuple[object, HFRows]:
    """``(dataset with images left undecoded, HFRows)`` after checking the columns of ``opts``."""
    from datasets import Image as ImageFeature

    columns = columns_of(dataset)
    hint = ""
    if opts["caption_key"] is not None and columns is not None and opts["caption_key"] not in columns:
        if "label" in columns:
            hint = " For labelled images without captions set caption_key=null label_key=label (class prompts become captions)."
    check_column(columns, "img_key", opts["img_key"], where)
    check_column(columns, "caption_key", opts["caption_key"], where, hint)
    check_column(columns, "label_key", opts["label_key"], where)
    if opts["caption_key"] is None and opts["label_key"] is None:
        raise ValueError(
            f"{where}: set caption_key= (image-text pairs) or label_key= (labelled images), or both"
        )
    if columns is not None and isinstance(dataset.features[opts["img_key"]], ImageFeature):
        dataset = dataset.cast_column(opts["img_key"], ImageFeature(decode=False))  # decoded per sample
    names, by_name = (None, False)
    if opts["label_key"] is not None:
        names, by_name = class_names(dataset, opts["label_key"], opts["classes"], map_style, where)
    base = Path(opts["data_dir"]).expanduser()
    return dataset, HFRows(opts["img_key"], opts["caption_key"], opts["label_key"], names, by_name, base)


class HFImageText(Dataset):
    """A map-style Hugging Face dataset as a source: item i is row i as :class:`HFRows` makes it.

    ``classes`` (when labelled) lists the class names; the key of a sample is its image path when the
    dataset stores one, else ``<split>/<row>``.
    """

    def __init__(self, dataset, rows: HFRows, split: str = "train"):
        self.dataset, self.rows, self.split = dataset, rows, split
        self.classes = rows.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        return self.rows.sample(row, self.rows.image_key(row) or f"{self.split}/{index}")

    def column(self, option: str) -> list:
        """Every row's value of the column ``rows.<option>`` (``caption_key``, ``label_key``), read
        without decoding an image."""
        return list(self.dataset[getattr(self.rows, option)])


HF_DEFAULTS = dict(
    data_dir=None, format=None, split="train", data_files=None, img_key="image", caption_key="text",
    label_key=None, classes=None, streaming=False, num_samples=None, shuffle_buffer=256,
    cache_dir=None, batch_size=None,
)  # fmt: skip


def open_source(name: str, opts: dict, streaming: bool | None = None) -> tuple[object, HFRows, str]:
    """``(prepared dataset, HFRows, split)`` of the ``data.sources.<name>`` options ``opts``."""
    where = f"data.sources.{name}"
    if not opts["data_dir"]:
        raise ValueError(f"{where}.data_dir is required for an hf_dataset source (a local dataset folder)")
    streaming = bool(opts["streaming"]) if streaming is None else streaming
    dataset, split = open_hf(
        opts["data_dir"],
        opts["format"],
        opts["split"],
        streaming,
        opts["data_files"],
        opts["cache_dir"],
        where,
    )
    dataset, rows = prepared(dataset, opts, not streaming, where)
    return dataset, rows, split


EVAL_COLUMNS = {"caption_key": "text", "label_key": "label"}  # used for evaluation when the dataset has them
EVAL_WHERE = "--hf-dataset"


def eval_options(dataset, options: dict) -> dict:
    """The source options to evaluate ``dataset`` with: ``options`` (``--hf-*`` flags, ``eval.hf_options``)
    over the defaults, where a caption or label column not named is ``text`` / ``label`` when the
    dataset has one; ValueError when it has neither or a named column is missing."""
    unknown = sorted(set(options) - set(HF_DEFAULTS))
    if unknown:
        raise ValueError(f"{EVAL_WHERE}: unknown option(s) {unknown}; valid: {sorted(HF_DEFAULTS)}")
    opts = {**HF_DEFAULTS, **options}
    columns = columns_of(dataset)
    for option, column in EVAL_COLUMNS.items():
        if option not in options:
            opts[option] = column if columns is None or column in columns else None
    if opts["caption_key"] is None and opts["label_key"] is None:
        raise ValueError(
            f"{EVAL_WHERE}: the dataset has neither a 'text' nor a 'label' column (its columns: {columns}); "
            "name its caption column with --hf-caption-key or its label column with --hf-label-key"
        )
    for option in ("img_key", "caption_key", "label_key"):
        check_column(columns, option, opts[option], EVAL_WHERE)
    return opts


def open_for_eval(data_dir: str | Path, options: dict | None = None, streaming: bool = False):
    """``(prepared dataset, HFRows, split, options)`` of ``data_dir`` for evaluation: the split named in
    ``options`` or else the only one, ``test`` or ``validation``; columns as :func:`eval_options`."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    split, fmt = options.get("split"), options.get("format")
    dataset, split = open_hf(
        data_dir, fmt, split, streaming, options.get("data_files"), options.get("cache_dir"), EVAL_WHERE
    )
    opts = {**eval_options(dataset, options), "data_dir": str(data_dir), "split": split}
    if streaming:  # a check of the request: the columns are there, nothing more is read
        return dataset, None, split, opts
    dataset, rows = prepared(dataset, opts, True, EVAL_WHERE)
    return dataset, rows, split, opts


@register_source("hf_dataset", **HF_DEFAULTS)
def build_hf_source(name: str, opts: dict) -> HFImageText:
    """A map-style :class:`HFImageText`; a streaming source is built by the trainer's loaders."""
    if opts["streaming"]:
        raise ValueError(f"data.sources.{name}: a streaming hf_dataset source streams; use build_loaders")
    dataset, rows, split = open_source(name, opts)
    return HFImageText(dataset, rows, split)
