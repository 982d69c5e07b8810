"""Hugging Face ``datasets`` folders as a source: imagefolder, parquet and arrow, map-style and streamed."""

import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

pytest.importorskip("datasets")

from hf_helpers import CLASSES, caption, image, write_arrow, write_imagefolder, write_parquet  # noqa: E402
from synclip.data.hf_stream import HFStream, count_rows  # noqa: E402
from synclip.data.sources import build_source, resolve_source  # noqa: E402
from synclip.data.sources.hf_dataset import open_source  # noqa: E402


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    """Arrow caches of map-style loads go to the test's folder, not ~/.cache/huggingface."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {
        "imagefolder": write_imagefolder(root / "imagefolder"),
        "labelled": write_imagefolder(root / "labelled", captions=False),
        "parquet": write_parquet(root / "parquet"),
        "arrow": write_arrow(root / "arrow"),
    }


def _number(text: str) -> int:
    return int(text.rsplit(" ", 1)[1])


class Pixels:
    """Views for the tests: caption, label and the image as an array (picklable for workers)."""

    def __call__(self, sample):
        out = {"pixels": torch.from_numpy(np.asarray(sample["image"]).copy())}
        out.update({k: sample[k] for k in ("caption", "label") if k in sample})
        return out


@pytest.mark.parametrize("fmt", ["imagefolder", "parquet", "arrow"])
def test_each_local_format_gives_the_images_and_captions_it_holds(folders, fmt):
    label = None if fmt == "imagefolder" else "label"
    spec = {"kind": "hf_dataset", "format": fmt, "data_dir": str(folders[fmt]), "label_key": label}
    source = build_source("pairs", spec)
    assert len(source) == 24
    seen = set()
    for i in range(len(source)):
        sample = source[i]
        n = _number(sample["caption"])
        assert sample["caption"] == caption(n)
        assert np.array_equal(np.asarray(sample["image"]), np.asarray(image(n)))  # PNG round trip
        if label:
            assert sample["label"] == n % 2 and sample["class_name"] == CLASSES[n % 2]
        seen.add(n)
    assert seen == set(range(24))


def test_format_is_inferred_and_labelled_folders_need_no_captions(folders):
    spec = {
        "kind": "hf_dataset",
        "data_dir": str(folders["labelled"]),
        "caption_key": None,
        "label_key": "label",
    }
    source = build_source("labels", spec)
    assert source.classes == CLASSES
    sample = source[0]
    assert set(sample) == {"image", "key", "label", "class_name"} and sample["key"].endswith(".png")


def test_missing_column_names_the_columns_there_are(folders):
    spec = {"kind": "hf_dataset", "data_dir": str(folders["labelled"])}  # caption_key defaults to text
    with pytest.raises(
        ValueError, match=r"no column 'text'.*\['image', 'label'\].*caption_key=null label_key=label"
    ):
        build_source("pairs", spec)
    spec = {"kind": "hf_dataset", "format": "parquet", "data_dir": str(folders["parquet"]), "img_key": "jpg"}
    with pytest.raises(ValueError, match=r"no column 'jpg' \(img_key\).*'image', 'text', 'label'"):
        build_source("pairs", spec)
    with pytest.raises(ValueError, match="no split 'test'.*train"):
        build_source("pairs", {**spec, "img_key": "image", "split": "test"})


def test_missing_datasets_package_says_which_extra_to_install(folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails
    with pytest.raises(ModuleNotFoundError, match=r"synclip\[hf\]"):
        build_source("pairs", {"kind": "hf_dataset", "data_dir": str(folders["parquet"])})


def _stream(folder, fmt, readers_rank, world, workers, seed=3, **options):
    spec = {"kind": "hf_dataset", "format": fmt, "data_dir": str(folder), "streaming": True, **options}
    _, opts = resolve_source("pairs", spec)
    dataset, rows, _ = open_source("pairs", opts)
    stream = HFStream(dataset, rows, Pixels(), seed=seed, shuffle_buffer=8, passes=1)
    stream.rank, stream.world = readers_rank, world
    return list(DataLoader(stream, batch_size=None, num_workers=workers))


@pytest.mark.parametrize("fmt,files", [("parquet", 2), ("arrow", 2), ("imagefolder", 24)])
def test_stream_gives_every_row_once_across_2_ranks_x_2_workers(folders, fmt, files):
    """4 readers: two files are split by rows (each reader keeps every 4th), 24 image files by file."""
    items = [x for rank in (0, 1) for x in _stream(folders[fmt], fmt, rank, 2, 2)]
    numbers = sorted(_number(x["caption"]) for x in items)
    assert numbers == list(range(24))
    for x in items[:5]:
        assert np.array_equal(x["pixels"].numpy(), np.asarray(image(_number(x["caption"]))))


def test_stream_order_follows_seed_and_epoch_and_rows_are_counted(folders):
    a = [x["key"] for x in _stream(folders["parquet"], "parquet", 0, 1, 0)]
    assert a == [x["key"] for x in _stream(folders["parquet"], "parquet", 0, 1, 0)]
    assert a != [x["key"] for x in _stream(folders["parquet"], "parquet", 0, 1, 0, seed=4)]
    spec = {"kind": "hf_dataset", "format": "parquet", "data_dir": str(folders["parquet"]), "streaming": True}
    dataset, rows, _ = open_source("pairs", resolve_source("pairs", spec)[1])
    assert count_rows(dataset, rows) == 24


def test_stream_resume_skips_what_each_worker_produced(folders):
    """With 2 workers, resuming at batch 3 of an epoch gives exactly the batches after the first 3."""
    from synclip.train.data import StreamLoader

    spec = {"kind": "hf_dataset", "format": "parquet", "data_dir": str(folders["parquet"]), "streaming": True}
    dataset, rows, _ = open_source("pairs", resolve_source("pairs", spec)[1])
    loader = StreamLoader(HFStream(dataset, rows, Pixels(), seed=5, shuffle_buffer=8), 4, 24, workers=2)
    full = [b["key"] for b in loader.epoch_batches(1)]
    resumed = [b["key"] for b in loader.epoch_batches(1, start_batch=3)]
    assert len(full) == 6 and resumed == full[3:]


def test_save_to_disk_folders_and_path_columns_are_read(tmp_path):
    import datasets

    from hf_helpers import table

    saved = tmp_path / "saved"
    table(8).save_to_disk(str(saved), num_shards=2)  # read with load_from_disk, not load_dataset
    source = build_source("pairs", {"kind": "hf_dataset", "data_dir": str(saved), "label_key": "label"})
    assert sorted(_number(source[i]["caption"]) for i in range(8)) == list(range(8))
    spec = {"kind": "hf_dataset", "data_dir": str(saved), "streaming": True}
    dataset, rows, _ = open_source("pairs", resolve_source("pairs", spec)[1])
    assert dataset.num_shards == 2 and count_rows(dataset, rows) == 8

    paths = tmp_path / "paths"  # an image column of file paths relative to data_dir
    (paths / "img").mkdir(parents=True)
    for i in range(4):
        image(i).save(paths / "img" / f"{i}.png")
    rows = {"file": [f"img/{i}.png" for i in range(4)], "text": [caption(i) for i in range(4)]}
    datasets.Dataset.from_dict(rows).to_parquet(str(paths / "train.parquet"))
    source = build_source("pairs", {"kind": "hf_dataset", "data_dir": str(paths), "img_key": "file"})
    assert np.array_equal(np.asarray(source[3]["image"]), np.asarray(image(3)))


def test_label_columns_without_class_names(tmp_path):
    import datasets

    root = tmp_path / "names"
    root.mkdir()
    (root / "img").mkdir()
    for i in range(4):
        image(i).save(root / "img" / f"{i}.png")
    rows = {"file": [f"img/{i}.png" for i in range(4)], "kind": [CLASSES[i % 2] for i in range(4)]}
    datasets.Dataset.from_dict(rows).to_parquet(str(root / "train.parquet"))
    spec = {
        "kind": "hf_dataset",
        "data_dir": str(root),
        "img_key": "file",
        "caption_key": None,
        "label_key": "kind",
    }
    source = build_source("labels", spec)  # map-style: the sorted names in the column
    assert source.classes == CLASSES and source[1]["class_name"] == "red" and source[1]["label"] == 1
    with pytest.raises(ValueError, match=r"streamed label column of strings \('kind'\).*classes="):
        open_source("labels", resolve_source("labels", {**spec, "streaming": True})[1])
    opts = resolve_source("labels", {**spec, "streaming": True, "classes": ["red", "blue"]})[1]
    dataset, rows, _ = open_source("labels", opts)
    stream = HFStream(dataset, rows, Pixels(), passes=1)
    assert sorted(x["label"] for x in stream) == [0, 0, 1, 1]  # red -> 0 in the list given
