"""`synclip compare`: the report's statistics, and a real two-recipe comparison that resumes."""

import json
import statistics

import pytest

from run_helpers import small_run_overrides
from synclip.cli import main
from synclip.compare import Entry, compare
from synclip.eval.report import markdown_table, mean_std, summarise


def _record(label, seed, top1, r5):
    return {
        "label": label,
        "seed": seed,
        "train_seconds": 60.0 * (seed + 1),
        "tasks": {
            "head_noun/twemoji": {"metrics": {"top1": top1, "top5": 0.9}, "chance": {"top1": 0.05}},
            "retrieval/openmoji": {
                "metrics": {"text_to_image_R@5": r5, "image_to_text_R@5": None},
                "chance": {"text_to_image_R@5": 0.01, "image_to_text_R@5": 0.01},
            },
        },
    }


def test_mean_std_is_the_sample_statistic():
    assert mean_std([0.2, 0.4, 0.9]) == pytest.approx(
        (statistics.mean([0.2, 0.4, 0.9]), statistics.stdev([0.2, 0.4, 0.9]))
    )
    assert mean_std([0.3]) == (0.3, 0.0)


def test_summary_and_table_group_seeds_per_label():
    records = [_record("clip", 0, 0.5, 0.10), _record("clip", 1, 0.7, 0.20), _record("slip", 0, 0.6, 0.3)]
    summary = summarise(records)
    assert summary["labels"] == ["clip", "slip"]
    assert summary["seeds"] == {"clip": [0, 1], "slip": [0]}
    rows = {(r["task"], r["metric"]): r for r in summary["rows"]}
    assert set(rows) == {("head_noun/twemoji", "top1"), ("retrieval/openmoji", "text_to_image_R@5")}
    assert rows[("head_noun/twemoji", "top1")]["values"] == {"clip": [0.5, 0.7], "slip": [0.6]}
    table = markdown_table(summary).splitlines()
    assert table[0] == "| task | metric | `clip` | `slip` | chance |"
    sd = 100 * statistics.stdev([0.5, 0.7])
    assert table[2] == f"| head_noun/twemoji | top1 | 60.0 ± {sd:.1f} | 60.0 | 5.00 |"
    assert table[4] == "| training | wall-clock (min) | 1.5 ± 0.7 | 1.0 | |"


def test_entry_labels():
    assert Entry.parse("slip") == Entry("slip", "slip")
    assert Entry.parse("slip_pd50=slip") == Entry("slip_pd50", "slip")
    with pytest.raises(ValueError, match="unique"):
        compare([Entry("a", "clip"), Entry("a", "slip")], "unused")


@pytest.mark.slow
def test_compare_trains_evaluates_reports_and_resumes(emoji_subset, emoji_corpus, tmp_path, monkeypatch):
    shared = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 2, "train.epochs": 1})
    shared = [o for o in shared if not o.startswith("train.out_dir")]
    out = tmp_path / "report"
    args = ["compare", "clip", "fast=clip", "--seeds", "2", "--out", str(out), "--tasks", "retrieval"]
    args += ["--limit", "64", "--set", *shared, "--set-for", "fast", "train.lr=1e-4"]
    assert main(args) == 0

    report = json.loads((out / "results.json").read_text())
    assert {(r["label"], r["seed"]) for r in report["records"]} == {
        (label, seed) for label in ("clip", "fast") for seed in (0, 1)
    }
    fast = next(r for r in report["records"] if r["label"] == "fast")
    assert "train.lr=1e-4" in fast["overrides"] and "train.seed=0" in fast["overrides"]
    assert (out / "runs" / "fast-s1" / "checkpoint.pt").exists()
    assert (out / "results.png").stat().st_size > 1000
    md = (out / "results.md").read_text()
    assert "| retrieval/twemoji | text_to_image_R@5 |" in md and "over 2 seed(s)" in md

    # finished runs are not trained again: a second call must not reach the training loop
    def no_training(cfg):
        raise AssertionError(f"retrained {cfg.train.name}")

    monkeypatch.setattr("synclip.train.loop.train", no_training)
    assert main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["records"] == report["records"]

    # other tasks: the finished runs are evaluated again, still not retrained, wall-clock kept
    wider = [
        *args[: args.index("--tasks") + 1],
        "retrieval",
        "image_retrieval",
        *args[args.index("--limit") :],
    ]
    assert main(wider) == 0
    widened = json.loads((out / "results.json").read_text())["records"]
    for old, new in zip(report["records"], widened):
        assert new["train_seconds"] == old["train_seconds"] and new["overrides"] == old["overrides"]
        assert set(new["tasks"]) == {*old["tasks"], "image_retrieval/twemoji_to_openmoji"}
        assert new["eval"] == {"tasks": ["retrieval", "image_retrieval"], "limit": 64}

    # an existing checkpoint joins the table under its folder's name
    monkeypatch.undo()
    ckpt = out / "runs" / "clip-s0" / "checkpoint.pt"
    assert main(["compare", "--checkpoints", str(ckpt), "--out", str(tmp_path / "r2"), "--tasks", "retrieval",
                 "--limit", "64"]) == 0  # fmt: skip
    labels = [r["label"] for r in json.loads((tmp_path / "r2" / "results.json").read_text())["records"]]
    assert labels == ["clip-s0"]


def test_compare_checks_the_eval_data_before_any_row_trains(tmp_path, monkeypatch, capsys):
    def no_training(cfg):
        raise AssertionError(f"trained {cfg.train.name} before checking the eval data")

    monkeypatch.setattr("synclip.train.loop.train", no_training)
    out = str(tmp_path / "report")
    assert main(["compare", "clip", "--out", out, "--tasks", "image_folder"]) != 0
    assert "needs --image-folder" in capsys.readouterr().err
    assert main(["compare", "clip", "--out", out, "--csv", str(tmp_path / "held_out.csv")]) != 0
    assert "held_out.csv does not exist" in capsys.readouterr().err
    assert not (tmp_path / "report" / "runs").exists()


@pytest.mark.slow
def test_compare_two_recipes_on_own_held_out_csv_with_validation_curves(emoji_corpus, tmp_path):
    from run_helpers import write_subset

    held_out = write_subset(emoji_corpus, tmp_path / "held_out.tsv", 16, start=300)  # not in the first 64
    pairs = write_subset(emoji_corpus, tmp_path / "train.tsv", 64)
    shared = small_run_overrides(pairs, tmp_path, **{"train.max_steps": 2, "train.epochs": 1})
    shared = [o for o in shared if not o.startswith("train.out_dir")] + ["eval.every_steps=1"]
    out = tmp_path / "report"
    args = [
        "compare",
        "clip",
        "fast=clip",
        "--out",
        str(out),
        "--csv",
        str(held_out),
        "--caption-key",
        "caption",
    ]
    args += ["--set", *shared]
    args += ["--set-for", "fast", "train.lr=1e-4"]
    assert main(args) == 0
    report = json.loads((out / "results.json").read_text())
    for record in report["records"]:
        assert set(record["tasks"]) == {"retrieval/csv"}  # the user's data only, not the emoji tasks
        assert record["eval"]["data"]["csv"] == str(held_out)
        metrics = [
            json.loads(line) for line in (out / "runs" / f"{record['label']}-s0" / "metrics.jsonl").open()
        ]
        assert [r["step"] for r in metrics if "val/retrieval/csv/text_to_image_R@1" in r] == [1, 2]
    assert "| retrieval/csv | text_to_image_R@5 |" in (out / "results.md").read_text()


def test_compare_refuses_a_finished_run_trained_otherwise(emoji_subset, tmp_path):
    """A row whose finished run (same label and seed) had other overrides must not be reused silently."""
    shared = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 1, "train.epochs": 1})
    shared = [o for o in shared if not o.startswith("train.out_dir")]
    out = tmp_path / "report"
    args = ["compare", "clip", "--out", str(out), "--tasks", "retrieval", "--limit", "32", "--set", *shared]
    assert main(args) == 0
    before = (out / "runs" / "clip-s0" / "compare.json").read_text()
    with pytest.raises(ValueError, match=r"other training overrides.*train.lr=1e-4"):
        compare([Entry.parse("clip")], out, 1, [*shared, "train.lr=1e-4"], ["retrieval"], 32)
    assert (out / "runs" / "clip-s0" / "compare.json").read_text() == before
