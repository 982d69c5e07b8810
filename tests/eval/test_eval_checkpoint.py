import json

import pytest
import torch

from synclip.eval.run import evaluate, format_table
from synclip.evaluate import evaluate_checkpoint
from synclip.models import create_model


def test_evaluate_checkpoint_writes_eval_json_with_provenance(tmp_path, emoji_corpus, untrained_checkpoint):
    ckpt = untrained_checkpoint(tmp_path / "checkpoint.pt")
    out = evaluate_checkpoint(ckpt, tasks=["category", "retrieval"], limit=200, device="cpu")
    saved = json.loads(out["path"].read_text())
    assert set(saved["tasks"]) == {"category/twemoji", "category/openmoji", "retrieval/twemoji"}
    assert len(saved["checkpoint"]["sha256"]) == 64 and saved["checkpoint"]["model"] == "micro-vit-32"
    entry = saved["tasks"]["category/twemoji"]
    assert entry["templates"]["set"] == "emoji" and entry["templates"]["templates"]
    assert entry["data"]["n"] <= 200 and entry["chance"]["top1"] == pytest.approx(1 / len(entry["classes"]))
    assert "| retrieval/twemoji | text_to_image_R@5 |" in out["table"]


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="known: .*category"):
        evaluate(create_model("micro-vit-32"), None, None, tasks=["imagenet"])


def test_untrained_model_scores_near_chance_on_retrieval(emoji_corpus):
    """A sanity check of the whole path: random weights must not look trained."""
    from synclip.api import ImagePreprocess
    from synclip.data.tokenizer import get_tokenizer
    from synclip.data.views import view_defaults

    torch.manual_seed(0)
    model = create_model("micro-vit-32")
    tok = get_tokenizer(model.context_length)
    pre = ImagePreprocess({**view_defaults("image"), "size": 32}, tok)
    result = evaluate(model, pre, tok, tasks=["retrieval"], limit=300)
    r5 = result["tasks"]["retrieval/twemoji"]["metrics"]["text_to_image_R@5"]
    assert r5 < 0.1
    assert "retrieval/twemoji" in format_table(result)


def test_cli_eval_templates_option_is_recorded(tmp_path, emoji_corpus, untrained_checkpoint, capsys):
    from synclip.cli import main

    ckpt = untrained_checkpoint(tmp_path / "checkpoint.pt")
    args = ["eval", str(ckpt), "--tasks", "head_noun", "--limit", "100", "--templates", "slip_imagenet"]
    assert main(args) == 0
    saved = json.loads((tmp_path / "eval.json").read_text())
    entry = saved["tasks"]["head_noun/twemoji"]
    assert entry["templates"]["set"] == "slip_imagenet" and len(entry["templates"]["templates"]) == 7
    assert saved["settings"]["templates"] == "slip_imagenet"
    drawn = sorted(p.name for p in (tmp_path / "plots").iterdir())  # --plots is on by default
    assert drawn == ["confusion_head_noun_openmoji.png", "confusion_head_noun_twemoji.png"]
    assert main([*args, "--no-plots", "--out", str(tmp_path / "other" / "eval.json")]) == 0
    assert (tmp_path / "other" / "eval.json").is_file() and not (tmp_path / "other" / "plots").exists()
    assert main([*args[:-1], str(tmp_path / "no-such-file.txt")]) == 2
    assert "neither a template set" in capsys.readouterr().err
