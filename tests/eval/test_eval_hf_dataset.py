"""`synclip eval` / `synclip compare` on a local Hugging Face dataset (``--hf-dataset``): the same
numbers as the image-folder and CSV tasks on the same images, and clear errors."""

import json

import pytest

pytest.importorskip("datasets")

from hf_helpers import caption, write_imagefolder, write_parquet  # noqa: E402
from synclip.cli import main  # noqa: E402
from synclip.eval.run import check_request  # noqa: E402


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hfeval")
    labelled = write_imagefolder(root / "labelled", captions=False)
    parquet = write_parquet(root / "parquet")
    lines = ["filepath\ttitle"] + [  # the same pairs as files, for the CSV task
        f"{p.relative_to(labelled)}\t{caption(int(p.stem))}" for p in sorted(labelled.rglob("*.png"))
    ]
    (labelled / "pairs.tsv").write_text("\n".join(lines) + "\n")
    return {"labelled": labelled, "parquet": parquet, "tsv": labelled / "pairs.tsv"}


def _eval(ckpt, out, *flags):
    assert main(["eval", str(ckpt), "--out", str(out), "--no-plots", *flags]) == 0
    return json.loads(out.read_text())


def test_labels_score_like_the_image_folder_and_captions_like_the_csv(data, untrained_checkpoint, tmp_path):
    ckpt = untrained_checkpoint(tmp_path / "checkpoint.pt")
    hf = _eval(ckpt, tmp_path / "hf.json", "--hf-dataset", str(data["labelled"]))
    folder = _eval(ckpt, tmp_path / "folder.json", "--image-folder", str(data["labelled"] / "train"))
    assert set(hf["tasks"]) == {"hf_dataset", "linear_probe/hf_dataset", "knn/hf_dataset"}  # no text column
    assert (
        hf["tasks"]["hf_dataset"]["classes"] == folder["tasks"]["image_folder"]["classes"] == ["blue", "red"]
    )
    assert hf["tasks"]["hf_dataset"]["metrics"] == pytest.approx(folder["tasks"]["image_folder"]["metrics"])

    both = _eval(ckpt, tmp_path / "pq.json", "--hf-dataset", str(data["parquet"]), "--hf-format", "parquet")
    csv = _eval(ckpt, tmp_path / "csv.json", "--csv", str(data["tsv"]))
    assert {"hf_dataset", "retrieval/hf_dataset"} <= set(both["tasks"])  # text and label columns
    assert both["tasks"]["retrieval/hf_dataset"]["data"]["n_texts"] == 24
    assert both["tasks"]["retrieval/hf_dataset"]["metrics"] == pytest.approx(
        csv["tasks"]["retrieval/csv"]["metrics"]
    )
    assert both["tasks"]["hf_dataset"]["metrics"] == pytest.approx(hf["tasks"]["hf_dataset"]["metrics"])


def test_compare_scores_a_checkpoint_on_the_hf_dataset(data, untrained_checkpoint, tmp_path):
    ckpt = untrained_checkpoint(tmp_path / "checkpoint.pt")
    out = tmp_path / "report"
    args = ["compare", "--checkpoints", str(ckpt), "--out", str(out), "--hf-dataset", str(data["parquet"])]
    assert main([*args, "--hf-caption-key", "text", "--hf-label-key", "label", "--limit", "12"]) == 0
    (record,) = json.loads((out / "results.json").read_text())["records"]
    assert "retrieval/hf_dataset" in record["tasks"] and "hf_dataset" in record["tasks"]


def test_request_mistakes_fail_before_any_image_is_encoded(data, tmp_path, monkeypatch):
    from hf_helpers import table

    with pytest.raises(ValueError, match=r"no column 'caption' \(caption_key\).*'image', 'text', 'label'"):
        check_request(hf_dataset=data["parquet"], hf_options={"caption_key": "caption"})
    with pytest.raises(ValueError, match=r"no split 'test'.*\['train'\]"):
        check_request(hf_dataset=data["parquet"], hf_options={"split": "test"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_request(hf_dataset=tmp_path / "nowhere")
    images_only = tmp_path / "images_only"
    images_only.mkdir()
    table(4).select_columns(["image"]).to_parquet(str(images_only / "train.parquet"))
    with pytest.raises(ValueError, match=r"neither a 'text' nor a 'label' column.*--hf-caption-key"):
        check_request(hf_dataset=images_only)
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)
    with pytest.raises(ModuleNotFoundError, match=r"synclip\[hf\]"):
        check_request(hf_dataset=data["parquet"])
