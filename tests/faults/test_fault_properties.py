"""Property-based bad input: every generated image file, CSV table or config value is used,
skipped and counted, or refused with one line, and never escapes as a traceback."""

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from synclip.data.images import BadSample, load_rgb
from synclip.data.sources import CsvImageText


def _encoded(fmt: str, mode: str) -> bytes:
    image = Image.new(mode, (12, 9), 200 if mode in ("L", "P") else (10, 200, 30, 120)[: len(mode)])
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


VALID = [
    _encoded(fmt, mode)
    for fmt, mode in [
        ("PNG", "RGBA"),
        ("PNG", "P"),
        ("JPEG", "RGB"),
        ("GIF", "L"),
        ("BMP", "RGB"),
        ("WEBP", "RGBA"),
    ]
    + [("TIFF", "RGB"), ("PPM", "RGB")]
]


@st.composite
def image_bytes(draw):
    """Random bytes, a valid image cut short, or a valid image with some bytes overwritten."""
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "valid"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(VALID)))
    if kind == "truncated":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "flipped":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@given(data=image_bytes(), suffix=st.sampled_from([".png", ".jpg", ".gif", ".webp", ".txt"]))
@example(data=VALID[0][:60], suffix=".png")
def test_any_image_file_is_decoded_to_rgb_or_is_a_bad_sample(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        try:
            image = load_rgb(path, "x")
        except BadSample as bad:
            assert bad.reason in ("corrupt_image", "truncated_image") and bad.key == "x"
        else:
            assert image.mode == "RGB" and image.width > 0 and image.height > 0
            image.resize((4, 4))  # fully decoded: usable after the file is gone


CELL = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["", " ", '"', '""', ",", "\t", "\n", "\r\n", "a\x00b", "ok.png", "x" * 1200]
)


@st.composite
def csv_bytes(draw):
    """A header (usually right) and rows of odd cells, sometimes with a byte that is not UTF-8."""
    header = draw(
        st.sampled_from([["filepath", "caption"], ["caption", "filepath", "extra"], ["path", "text"]])
    )
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=6))
    text = "\n".join(",".join(f'"{c}"' if draw(st.booleans()) else c for c in row) for row in [header, *rows])
    raw = bytearray(text.encode("utf-8"))
    if raw and draw(st.booleans()):
        raw.insert(draw(st.integers(0, len(raw))), draw(st.sampled_from([0x80, 0xE9, 0xFF, 0xC3])))
    return bytes(raw)


@given(data=csv_bytes())
@example(data=b"filepath,caption\n" + b"x" * 5000 + b",a name longer than a file system allows\n")
@example(data=b"filepath,caption\n/missing.png,caf\xe9\n")
def test_any_csv_is_read_row_by_row_or_refused_with_one_line_naming_it(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    path = folder / "table.csv"
    path.write_bytes(data)
    try:
        table = CsvImageText(path, caption_key="caption", sep="comma")
    except ValueError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    for i in range(len(table)):
        try:
            sample = table[i]
        except BadSample as bad:
            assert bad.reason in (
                "missing_file",
                "empty_caption",
                "caption_too_long",
                "not_utf8",
                "corrupt_image",
            )
        else:
            assert sample["image"].mode == "RGB" and sample["caption"].strip()
            sample["caption"].encode("utf-8")  # no stand-ins for undecodable bytes leak out


KEYS = [
    f"{section}.{name}"
    for section, names in {
        "train": [
            "epochs",
            "max_steps",
            "batch_size",
            "accum_steps",
            "lr",
            "warmup_steps",
            "checkpoint_every",
            "log_every",
            "beta2",
            "eps",
            "grad_clip_norm",
            "precision",
            "resume",
            "seed",
        ],
        "data": ["workers", "max_bad_fraction", "sources"],
        "eval": ["limit", "batch_size", "tasks"],
        "model": ["patch_dropout", "image_size", "unlocked_groups"],
        "objectives": ["clip", "clip.weight", "clip.text_view"],
    }.items()
    for name in names
] + ["views.text", "nonsense", "train.nonsense", "train"]
VALUES = (
    st.sampled_from(
        [
            "0",
            "-1",
            "-5",
            "1",
            "3",
            "1e9",
            ".nan",
            "-.inf",
            "0.5",
            "2",
            "null",
            "true",
            "[1",
            "{a: 1}",
            "[]",
            "text_prompt",
            "'5e-4'",
            "fp16",
            "{pairs: {kind: image_folder, root: /nope}}",
            "",
            ":",
            "a: b: c",
        ]
    )
    | st.integers(-3, 3).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
)


@given(key=st.sampled_from(KEYS), value=VALUES)
@example(key="views.text", value="-1")
@example(key="train.checkpoint_every", value="0")
@example(key="train.lr", value="[1")
def test_any_override_builds_a_config_or_is_refused_in_one_line(cli, key, value):
    code, out, err = cli("train", "clip", f"{key}={value}", "--print-config")
    if code == 0:
        assert out.lstrip().startswith("{") and not err
        return
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synclip train: error: "), err


@pytest.mark.parametrize("data", VALID)
def test_the_valid_images_of_the_generators_are_used(data, tmp_path):
    path = tmp_path / "x.img"
    path.write_bytes(data)
    assert load_rgb(path, "x").mode == "RGB"
