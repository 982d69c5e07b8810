"""Evaluation reads images as training does: bad ones are skipped and counted in eval.json, the
user's missing data is an error, and eval.json is only (re)written when there are results."""

import json

from PIL import Image


def _twemoji(emoji_corpus, n):
    return sorted((emoji_corpus / "twemoji").glob("*.png"))[:n]


def _csv_with_a_truncated_image(emoji_corpus, tmp_path):
    images = _twemoji(emoji_corpus, 8)
    cut = tmp_path / "cut.png"
    cut.write_bytes(images[0].read_bytes()[:300])
    rows = [f"{cut},a broken one"] + [f"{p},emoji number {i}" for i, p in enumerate(images[1:])]
    path = tmp_path / "pairs.csv"
    path.write_text("filepath,caption\n" + "\n".join(rows) + "\n")
    return path, cut


def test_eval_csv_skips_and_reports_a_truncated_image(cli, checkpoint, emoji_corpus, tmp_path):
    path, cut = _csv_with_a_truncated_image(emoji_corpus, tmp_path)
    out = tmp_path / "eval.json"
    code, _, err = cli(
        "eval",
        checkpoint,
        "--csv",
        path,
        "--caption-key",
        "caption",
        "--csv-separator",
        "comma",
        "--no-plots",
        "--out",
        out,
    )
    assert code == 0, err
    entry = json.loads(out.read_text())["tasks"]["retrieval/csv"]
    assert entry["data"]["bad_images"] == {"n_bad": 1, "examples": [f"{cut}: truncated_image"]}
    assert entry["data"]["n_images"] == 7 and entry["data"]["n_texts"] == 7 and entry["metrics"]


def _folder(emoji_corpus, root):
    images = _twemoji(emoji_corpus, 20)
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for p in images[c * 10 : (c + 1) * 10]:
            (root / name / p.name).write_bytes(p.read_bytes())
    (root / "cat" / "notes.png").write_text("not an image")
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(root / "dog" / "clear.png")  # used: on white
    return root


def test_eval_image_folder_skips_and_reports_a_text_file_named_png(cli, checkpoint, emoji_corpus, tmp_path):
    root = _folder(emoji_corpus, tmp_path / "folder")
    out = tmp_path / "eval.json"
    code, _, err = cli("eval", checkpoint, "--image-folder", root, "--no-plots", "--out", out)
    assert code == 0, err
    data = json.loads(out.read_text())["tasks"]["image_folder"]["data"]
    assert data["bad_images"] == {"n_bad": 1, "examples": ["cat/notes.png: corrupt_image"]}
    assert data["n"] == 21 and data["n_listed"] == 22  # 20 emoji + the transparent one


def test_transparent_images_are_read_on_white_as_in_training(tmp_path):
    from synclip.eval.task_data import ImageFiles

    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert ImageFiles([path])[0].getpixel((0, 0)) == (255, 255, 255)


def test_missing_user_data_is_an_error_and_leaves_eval_json_alone(cli, checkpoint, tmp_path):
    out = checkpoint.parent / "eval.json"
    out.write_text('{"tasks": {"earlier": {}}}')
    for option in ("--csv", "--image-folder"):
        code, _, err = cli("eval", checkpoint, option, tmp_path / "nope", "--no-plots")
        assert (
            code == 2 and f"{tmp_path / 'nope'} does not exist" in err and len(err.strip().splitlines()) == 1
        )
    assert json.loads(out.read_text()) == {"tasks": {"earlier": {}}}


def test_an_evaluation_without_results_writes_nothing(cli, checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    code, _, err = cli(
        "eval", checkpoint, "--tasks", "classifier", "--no-plots", "--out", out, "--limit", "4"
    )
    assert code == 2 and "no eval task produced a result" in err and "was not written" in err
    assert not out.exists()
