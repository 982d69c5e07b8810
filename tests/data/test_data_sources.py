"""Sources on real files in every awkward state: exactly the broken samples raise BadSample."""

from __future__ import annotations

import numpy as np
import pytest

from synclip.data import ArrayImageLabel, BadSample, CsvImageText, ImageFolder

CASES = [  # filepath, caption, expected reason (None: a good sample)
    ("good.jpg", "a noisy picture", None),
    ("rgba.png", "a blue square", None),
    ("grey.png", "grey noise", None),
    ("grey16.png", "a white 16-bit square", None),
    ("cmyk.jpg", "a white cmyk square", None),
    ("palette.png", "a palette picture", None),
    ("sub/nested.png", "in a sub folder", None),
    ("absent.png", "no such file", "missing_file"),
    ("random.png", "random bytes", "corrupt_image"),
    ("truncated.png", "cut in half", "truncated_image"),
    ("good.jpg", "   ", "empty_caption"),
    ("good.jpg", "x" * 5000, "caption_too_long"),
]


@pytest.fixture
def messy_tsv(messy_dir):
    path = messy_dir / "pairs.tsv"
    lines = ["filepath\tcaption\tnote"] + [f"{fp}\t{cap}\tn{i}" for i, (fp, cap, _) in enumerate(CASES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_exactly_the_broken_rows_raise(messy_tsv):
    source = CsvImageText(messy_tsv, caption_key="caption", extra_keys=("note",))
    assert len(source) == len(CASES) and source.columns == ["filepath", "caption", "note"]
    for i, (filepath, caption, reason) in enumerate(CASES):
        if reason is None:
            sample = source[i]
            assert sample["image"].mode == "RGB", filepath
            assert sample["caption"] == caption and sample["key"] == filepath and sample["note"] == f"n{i}"
        else:
            with pytest.raises(BadSample) as err:
                source[i]
            assert (err.value.reason, err.value.key) == (reason, filepath)


def test_converted_modes_keep_their_pixels(messy_tsv):
    source = CsvImageText(messy_tsv, caption_key="caption")
    rgba = source[1]["image"]
    assert rgba.getpixel((0, 0)) == (0, 0, 255) and rgba.getpixel((15, 15)) == (255, 255, 255)  # on white
    assert source[3]["image"].getpixel((0, 0)) == (255, 255, 255)  # 16-bit white stays white
    grey = np.asarray(source[2]["image"])
    assert (grey[..., 0] == grey[..., 1]).all() and grey.std() > 0
    assert source[5]["image"].size == (30, 40)


def test_absolute_paths_and_comma_csv(messy_dir, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(f'image,text\n{messy_dir / "good.jpg"},"a caption, with a comma"\n')
    sample = CsvImageText(path, img_key="image", caption_key="text", sep="comma")[0]
    assert sample["caption"] == "a caption, with a comma" and sample["image"].size == (30, 40)


def test_missing_column_names_the_option(messy_tsv):
    with pytest.raises(ValueError, match="img_key") as err:
        CsvImageText(messy_tsv, caption_key="caption", img_key="image")
    assert "'filepath'" in str(err.value)  # lists the available columns
    with pytest.raises(ValueError, match="caption_key"):
        CsvImageText(messy_tsv, caption_key="text")
    with pytest.raises(ValueError, match="extra_keys"):
        CsvImageText(messy_tsv, caption_key="caption", extra_keys=("nope",))


def test_image_folder(messy_dir, tmp_path):
    for name, files in {"cat": ["good.jpg", "random.png"], "ant": ["rgba.png"]}.items():
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_bytes((messy_dir / f).read_bytes())
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    folder = ImageFolder(tmp_path)
    assert folder.classes == ["ant", "cat"] and len(folder) == 3
    first = folder[0]
    assert (first["label"], first["class_name"], first["key"], first["image"].mode) == (
        0,
        "ant",
        "ant/rgba.png",
        "RGB",
    )
    with pytest.raises(BadSample) as err:
        folder[2]
    assert (err.value.reason, err.value.key) == ("corrupt_image", "cat/random.png")


def test_array_image_label():
    grey = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    source = ArrayImageLabel(grey, [1, 0], ["a", "b"])
    sample = source[0]
    assert sample["image"].mode == "RGB" and sample["image"].size == (5, 4)
    assert (sample["label"], sample["class_name"]) == (1, "b")
    colour = ArrayImageLabel(np.zeros((3, 2, 2, 3), np.uint8), [0, 0, 0], ["x"])
    assert colour[2]["image"].getpixel((0, 0)) == (0, 0, 0) and len(colour) == 3
    with pytest.raises(ValueError):
        ArrayImageLabel(grey.astype(np.float32), [0, 0], ["a"])
    with pytest.raises(ValueError):
        ArrayImageLabel(grey, [0, 5], ["a", "b"])


def test_bad_sample_message():
    err = BadSample("missing_file", "x.png", "/data/x.png")
    assert "missing_file" in str(err) and "x.png" in str(err)
