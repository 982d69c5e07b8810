"""The ``captioning`` and ``generative_zero_shot`` eval tasks on a tiny decoder model, their chance
levels, the report rows, and their skip reason on a model without a decoder."""

from pathlib import Path

import pytest
import torch

from synclip.api import load
from synclip.eval import caption_tasks as ct
from synclip.eval.report import summarise
from synclip.eval.run import default_tasks, evaluate, format_table
from synclip.recipe import Recipe, build_heads

TASKS = ["captioning", "generative_zero_shot"]


@pytest.fixture(scope="module")
def decoder_model(untrained_checkpoint, tmp_path_factory):
    """micro-vit-32 with an untrained CoCa-style decoder in ``heads``, as synclip.load serves it."""
    torch.manual_seed(0)
    model = load(untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "clip.pt"))
    recipe = Recipe(model, {"caption": {"n_queries": 8, "layers": 1}})
    model.heads = build_heads(recipe.heads())
    return model


def test_caption_tasks_run_on_a_decoder_model(decoder_model, tmp_path):
    assert set(TASKS) <= set(default_tasks()[0])
    m = decoder_model
    result = evaluate(m, m.preprocess, m.tokenizer, tasks=TASKS, limit=12, plots_dir=tmp_path / "plots")
    for style in ("twemoji", "openmoji"):
        entry = result["tasks"][f"captioning/{style}"]
        assert entry["kind"] == "captioning" and entry["data"]["n"] == 12
        assert set(entry["metrics"]) == {"cider", "bleu", "exact_match"} == set(entry["chance"])
        assert all(v >= 0 for v in entry["metrics"].values())
        assert len(entry["examples"]) == ct.N_EXAMPLES
        assert entry["data"]["constant_caption"]["caption"]
        plot = result["plots"][f"captioning/{style}"]
        assert Path(plot[0]).is_file()
        for name in ("category", "head_noun"):
            zs = result["tasks"][f"generative_zero_shot/{name}/{style}"]
            assert zs["kind"] == "generative_zero_shot" and zs["head"]["reduction"] == "sum"
            assert {"top1", "contrastive_top1"} <= set(zs["metrics"])
            c = len(zs["classes"])
            assert zs["chance"]["top1"] == pytest.approx(1 / c) == zs["chance"]["contrastive_top1"]
            assert 0 <= zs["metrics"]["top1"] <= 1
    assert "generative_zero_shot/fashion_mnist" in set(result["tasks"]) | set(result["skipped"])
    table = format_table(result)
    assert "| captioning/twemoji | cider |" in table
    rows = summarise([{"label": "coca", "seed": 0, "tasks": result["tasks"]}])["rows"]
    shown = {(r["task"], r["metric"]) for r in rows}
    assert {("captioning/twemoji", "cider"), ("captioning/twemoji", "bleu")} <= shown
    assert ("generative_zero_shot/head_noun/twemoji", "contrastive_top1") in shown


def test_captioning_chance_is_another_images_caption_and_exact():
    refs = [
        ["grinning face with big eyes"],
        ["cat face with tears of joy"],
        ["man in business suit levitating"],
    ]
    refs_d = dict(enumerate(refs))
    perfect = ct.caption_scores(refs_d, {i: r[0] for i, r in refs_d.items()})
    assert perfect["exact_match"] == 1.0 and perfect["bleu"] == pytest.approx(1.0)
    other = ct.caption_scores(refs_d, {j: refs[k][0] for j, k in enumerate(ct.other_images(3))})
    assert other["exact_match"] == 0.0 and other["cider"] < perfect["cider"]


def test_captioning_chance_pairs_each_image_with_another_regardless_of_order():
    for n in (2, 3, 10, 500):
        order = ct.other_images(n)
        assert sorted(order) == list(range(n)) and all(k != j for j, k in enumerate(order))
        assert order == ct.other_images(n)  # seeded: the same chance level on every run
    assert ct.other_images(500) != [(j + 1) % 500 for j in range(500)]  # not the next image: neighbours
    # in the emoji corpus share words, which made that "chance" score CIDEr 69


def test_generative_scores_are_the_decoders_summed_log_likelihood(decoder_model):
    m = decoder_model
    head = m.heads["caption"]
    x = torch.randn(3, 3, m.image_size, m.image_size)
    tokens = m.tokenizer(["cat", "red heart", "grinning face with big eyes"])  # (C, L)
    with torch.no_grad():
        ll = head.log_likelihood(m, x, tokens)  # (B, C, L - 1)
        image = m.image_outputs(x)["tokens"]
        for b in range(3):
            for c in range(3):
                logits = head.decoder(image[b : b + 1], m.text_outputs(tokens[c : c + 1])["tokens"][:, :-1])
                expected = torch.log_softmax(logits, -1).gather(-1, tokens[c : c + 1, 1:, None])[0, :, 0]
                real = tokens[c, 1:] != 0
                assert torch.allclose(ll[b, c][real], expected[real], atol=1e-4)


def test_a_clip_model_skips_both_with_a_reason(untrained_checkpoint, tmp_path):
    model = load(untrained_checkpoint(tmp_path / "clip.pt"))
    result = evaluate(model, model.preprocess, model.tokenizer, tasks=TASKS, limit=4)
    assert result["tasks"] == {}
    assert result["skipped"]["captioning/twemoji"] == ct.NO_DECODER
    assert result["skipped"]["generative_zero_shot/head_noun/openmoji"] == ct.NO_DECODER
    assert "coca, cappa" in ct.NO_DECODER
