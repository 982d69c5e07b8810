import json

import pytest

from counting import CountingModel
from synclip.eval import fashion_mnist as fm
from synclip.eval import run
from synclip.eval.baselines import PixelModel
from synclip.eval.run import evaluate, format_table, write_eval_json


def test_evaluate_emoji_tasks_encodes_each_image_set_once(clip_model, preprocess, tokenize, emoji_corpus):
    model = CountingModel(clip_model)
    tasks = ["category", "subcategory", "head_noun", "retrieval", "cross_style"]
    result = evaluate(
        model, preprocess, tokenize, tasks=tasks, corpus_dir=emoji_corpus, limit=120, batch_size=64
    )
    assert model.seen["images"] == 2 * 120  # twemoji and openmoji, once each, shared by 4 tasks each
    expected = {f"{t}/{s}" for t in ("category", "subcategory", "head_noun") for s in ("twemoji", "openmoji")}
    assert set(result["tasks"]) == expected | {"retrieval/twemoji", "retrieval/openmoji"}
    assert result["skipped"] == {} and set(result["seconds"]) == set(tasks)

    head = result["tasks"]["head_noun/twemoji"]
    assert (
        head["kind"] == "zero_shot" and head["templates"]["set"] == "emoji" and head["templates"]["templates"]
    )
    assert head["classes"] and head["chance"]["top1"] == pytest.approx(1 / len(head["classes"]))
    assert 0 < head["data"]["n"] < 120
    for entry in result["tasks"].values():
        for key, value in entry["metrics"].items():
            assert value is None or 0.0 <= value <= 1.0, key
            assert (value is None) == (entry["chance"][key] is None), key

    retrieval = result["tasks"]["retrieval/openmoji"]
    assert retrieval["data"]["n_images"] == 120 and set(retrieval["metrics"]) == set(retrieval["chance"])
    # random weights must look untrained: Recall@10 of 120 candidates is near its chance of ~10/120
    assert retrieval["metrics"]["text_to_image_R@10"] < 0.35

    table = format_table(result)
    assert table.splitlines()[0] == "| task | metric | value (%) | chance (%) |"
    assert "| retrieval/twemoji | text_to_image_R@5 |" in table
    assert "| category/twemoji | top5 |" in table
    assert format_table(result, tasks=["retrieval/twemoji"]).count("\n") == 1 + 6


def test_image_retrieval_scores_pixel_similarity_across_styles(preprocess, emoji_corpus, tmp_path):
    """Twemoji and OpenMoji drawings of one emoji share colours and layout (flags, keycaps, coloured
    shapes), so even raw pixels retrieve the other style's drawing far above chance; the task reuses
    the two styles' features and draws its grid with the query image in front."""
    model = CountingModel(PixelModel())
    result = evaluate(
        model,
        preprocess,
        None,
        tasks=["image_retrieval"],
        corpus_dir=emoji_corpus,
        limit=400,
        plots_dir=tmp_path,
    )
    assert model.seen["images"] == 2 * 400  # both styles, each encoded once
    entry = result["tasks"]["image_retrieval/twemoji_to_openmoji"]
    assert entry["kind"] == "image_retrieval" and entry["templates"] is None
    assert (
        set(entry["metrics"])
        == set(entry["chance"])
        == {
            "image_to_image_R@1",
            "image_to_image_R@5",
            "image_to_image_R@10",
            "mAP",
        }
    )
    assert entry["data"]["n_gallery"] == 400 and 300 < entry["data"]["n_queries"] <= 400
    assert entry["chance"]["mAP"] < 0.02
    assert entry["metrics"]["mAP"] > 5 * entry["chance"]["mAP"]
    assert entry["metrics"]["image_to_image_R@10"] > 5 * entry["chance"]["image_to_image_R@10"]
    (plot,) = result["plots"]["image_retrieval/twemoji_to_openmoji"]
    assert plot.endswith("retrieval_grid_image_retrieval_twemoji_to_openmoji.png")


def test_unknown_task_is_an_error(clip_model, preprocess, tokenize):
    with pytest.raises(ValueError, match="known: .*category"):
        evaluate(clip_model, preprocess, tokenize, tasks=["imagenet"])


def test_default_tasks_skip_fashion_mnist_with_a_reason_when_missing(monkeypatch):
    monkeypatch.setattr(fm, "available", lambda: "missing /x: apt-get install dataset-fashion-mnist")
    names, skipped = run.default_tasks()
    assert "fashion_mnist" not in names and "head_noun" in names
    assert "dataset-fashion-mnist" in skipped["fashion_mnist"]
    result = {"tasks": {}, "skipped": skipped}
    assert "| fashion_mnist | skipped: missing /x" in format_table(result)


def test_missing_data_is_skipped_not_fatal(clip_model, preprocess, tokenize, tmp_path):
    with pytest.warns(UserWarning, match="skipped"):
        result = evaluate(clip_model, preprocess, tokenize, tasks=["head_noun"], corpus_dir=tmp_path)
    assert result["tasks"] == {} and "head_noun" in result["skipped"]


@pytest.mark.skipif(fm.available() is not None, reason="Debian dataset-fashion-mnist is not installed")
def test_fashion_mnist_task(clip_model, preprocess, tokenize):
    model = CountingModel(clip_model)
    result = evaluate(model, preprocess, tokenize, tasks=["fashion_mnist"], limit=200)
    entry = result["tasks"]["fashion_mnist"]
    assert model.seen["images"] == 200 and entry["data"]["n"] == 200
    assert entry["templates"]["set"] == "fashion" and len(entry["classes"]) == 10
    assert entry["data"]["dataset_classes"][7] == "sneaker" and entry["classes"][7] == "running shoe"
    assert entry["chance"] == {"top1": 0.1, "top5": 0.5, "mean_per_class_recall": 0.1}
    task = fm.fashion_mnist_task(limit=200)
    assert sorted(set(task.labels)) == list(range(10))  # the evenly spread subset has every class
    assert task.images[0]["image"].mode == "RGB"


def test_write_eval_json_is_atomic_and_round_trips(tmp_path):
    result = {"tasks": {"x": {"metrics": {"top1": 0.5, "top5": None}}}, "skipped": {}, "path": tmp_path}
    path = write_eval_json(result, tmp_path / "sub" / "eval.json")
    saved = json.loads(path.read_text())
    assert saved["tasks"] == result["tasks"] and saved["path"] == str(tmp_path)
    assert [p.name for p in path.parent.iterdir()] == ["eval.json"]  # no temporary file left behind
    write_eval_json({"tasks": {}}, path)  # replaces the old file
    assert json.loads(path.read_text()) == {"tasks": {}}


def test_write_eval_json_leaves_the_old_file_when_serialising_fails(tmp_path):
    path = write_eval_json({"tasks": {}}, tmp_path / "eval.json")
    with pytest.raises(ValueError):
        write_eval_json({"tasks": {"x": {}}, **_circular()}, path)
    assert json.loads(path.read_text()) == {"tasks": {}}
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]


def _circular() -> dict:
    loop: dict = {}
    loop["self"] = loop
    return {"loop": loop}


def test_a_task_left_without_images_by_limit_is_skipped(clip_model, preprocess, tokenize, emoji_corpus):
    result = evaluate(clip_model, preprocess, tokenize, tasks=["head_noun"], corpus_dir=emoji_corpus, limit=1)
    assert set(result["tasks"]) | set(result["skipped"]) == {"head_noun/twemoji", "head_noun/openmoji"}
    assert all("limit" in reason for reason in result["skipped"].values())


def test_feature_cache_on_disk_encodes_an_image_set_once_across_calls(
    clip_model, preprocess, tokenize, emoji_corpus, tmp_path
):
    cache = tmp_path / "features"
    kwargs = dict(tasks=["retrieval"], corpus_dir=emoji_corpus, limit=50, batch_size=64, feature_cache=cache)
    first, second = CountingModel(clip_model), CountingModel(clip_model)
    a = evaluate(first, preprocess, tokenize, **kwargs)
    b = evaluate(second, preprocess, tokenize, **kwargs)
    assert first.seen["images"] == 50 and second.seen["images"] == 0
    assert len(list(cache.glob("*.pt"))) == 1
    assert a["tasks"]["retrieval/twemoji"]["metrics"] == b["tasks"]["retrieval/twemoji"]["metrics"]
    # another number of images is another entry, not a stale hit
    third = CountingModel(clip_model)
    evaluate(third, preprocess, tokenize, **{**kwargs, "limit": 40})
    assert third.seen["images"] == 40 and len(list(cache.glob("*.pt"))) == 2
