import os
import subprocess
import sys

import pytest
import torch

from synclip.eval.captioning import (
    bleu,
    cider,
    generative_class_scores,
    simple_tokenize,
    token_log_likelihoods,
)
from synclip.losses.caption import caption_loss
from synclip.models.caption_decoder import CaptionDecoder, TokenEmbedding

REFERENCES = {
    1: ["a black dog runs on the grass", "a dog running across a green field"],
    2: ["two people ride bicycles down a street", "cyclists riding on a city road"],
    3: ["a plate of pasta with tomato sauce", "spaghetti served on a white plate"],
}


def test_simple_tokenize_lowercases_and_drops_punctuation():
    assert simple_tokenize("  A Dog, running!  Fast.") == "a dog running fast"


def test_bleu_is_100_for_a_reference_and_low_for_unrelated_text():
    exact = {i: refs[0] for i, refs in REFERENCES.items()}
    assert bleu(REFERENCES, exact) == pytest.approx(100.0)
    unrelated = {1: "stock prices fell sharply", 2: "the violin concerto ended", 3: "rain is expected later"}
    assert bleu(REFERENCES, unrelated) < 5.0


def test_bleu_accepts_different_numbers_of_references():
    refs = {1: ["a cat on a mat", "a cat sits on a mat"], 2: ["the dog runs home"]}
    assert bleu(refs, {1: "a cat sits on a mat", 2: "the dog runs home"}) == pytest.approx(100.0)


def test_cider_orders_exact_partial_and_unrelated_captions():
    exact = {i: refs[0] for i, refs in REFERENCES.items()}
    partial = {1: "a dog on the grass", 2: "people ride down a road", 3: "a plate of food"}
    unrelated = {1: "stock prices fell sharply", 2: "the violin concerto ended", 3: "rain is expected later"}
    scores = {
        name: cider(REFERENCES, hyps)
        for name, hyps in [("exact", exact), ("partial", partial), ("unrelated", unrelated)]
    }
    assert scores["exact"][0] > scores["partial"][0] > scores["unrelated"][0] == 0.0
    assert all(scores["exact"][1][i] > scores["partial"][1][i] for i in REFERENCES)


def test_cider_tokenisation_ignores_case_and_punctuation():
    shouted = {i: refs[0].upper() + "!" for i, refs in REFERENCES.items()}
    exact = {i: refs[0] for i, refs in REFERENCES.items()}
    assert cider(REFERENCES, shouted)[0] == pytest.approx(cider(REFERENCES, exact)[0])


def test_metrics_need_matching_ids():
    with pytest.raises(ValueError):
        bleu(REFERENCES, {1: "a dog"})


def test_cider_runs_without_java(tmp_path):
    code = (
        "from synclip.eval.captioning import cider;"
        "print(cider({1: ['a dog runs'], 2: ['a cat sleeps']}, {1: 'a dog runs', 2: 'a cat'})[0])"
    )
    env = {**os.environ, "PATH": str(tmp_path)}  # no java (nor anything else) on the PATH
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) > 0


def test_class_scores_sum_real_tokens_only():
    class_tokens = torch.tensor([[1, 5, 2, 0], [1, 6, 7, 2]])  # class 0 is shorter (padded)

    def log_likelihoods(tokens):  # (C', 4) -> (B=2, C', 3): -1 per real token, -inf (garbage) at pads
        targets = tokens[:, 1:]
        ll = torch.where(targets != 0, -1.0, float("-inf"))
        return torch.stack([ll, 2 * ll])  # image 1 is twice as unsure

    scores = generative_class_scores(log_likelihoods, class_tokens)
    assert scores.tolist() == [[-2.0, -3.0], [-4.0, -6.0]]  # sums: 2 and 3 real targets, EOT included
    assert generative_class_scores(log_likelihoods, class_tokens, reduction="mean").tolist() == [
        [-1.0, -1.0],
        [-2.0, -2.0],
    ]
    assert torch.equal(generative_class_scores(log_likelihoods, class_tokens, chunk=1), scores)


def test_class_scores_from_a_decoder_are_summed_caption_log_likelihoods():
    torch.manual_seed(0)
    decoder = CaptionDecoder(12, 32, layers=1, heads=4, context_length=6, image_width=16, n_queries=4).eval()
    embed = TokenEmbedding(12, 32, 6, mask_token=False)
    images = torch.randn(3, 5, 16)  # (B, P, W_img)
    class_tokens = torch.tensor([[1, 5, 2, 0, 0], [1, 6, 7, 8, 2], [1, 9, 2, 0, 0]])  # (C, 5)

    def log_likelihoods(tokens):
        c = tokens.shape[0]
        inputs = embed(tokens[:, :-1])  # (C', 4, W)
        logits = decoder(images.repeat_interleave(c, 0), inputs.repeat(3, 1, 1))  # (B * C', 4, V)
        return token_log_likelihoods(logits, tokens[:, 1:].repeat(3, 1)).view(3, c, -1)  # (B, C', 4)

    scores = generative_class_scores(log_likelihoods, class_tokens)  # (3, 3)
    for b in range(3):
        for c in range(3):
            with torch.no_grad():
                logits = decoder(images[b : b + 1], embed(class_tokens[c : c + 1, :-1]))
            out = caption_loss(logits, class_tokens[c : c + 1, 1:])
            expected = -out["loss"].item() * out["tokens"].item()  # mean NLL x real tokens = -sum LL
            assert scores[b, c].item() == pytest.approx(expected, rel=1e-5)
