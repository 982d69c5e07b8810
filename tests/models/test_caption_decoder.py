import pytest
import torch
from open_clip.coca_model import CoCa

from synclip.losses.caption import caption_loss, parallel_prediction_inputs, teacher_forcing
from synclip.models.caption_decoder import CaptionDecoder, TokenEmbedding
from synclip.models.caption_generation import beam_search, decoder_next_logits, greedy, sample

V, W, IMG_W, CTX = 12, 32, 16, 8  # toy vocabulary: 0 = pad, 1 = SOT, 2 = EOT
SOT, EOT, PAD = 1, 2, 0


def _decoder(n_queries=4):
    return CaptionDecoder(V, W, layers=2, heads=4, context_length=CTX, image_width=IMG_W, n_queries=n_queries)


def _tiny_coca():
    return CoCa(
        embed_dim=W,
        multimodal_cfg={"context_length": CTX, "vocab_size": V, "width": W, "heads": 4, "layers": 2},
        text_cfg={"context_length": CTX, "vocab_size": V, "width": W, "heads": 4, "layers": 1,
                  "embed_cls": True, "output_tokens": True},
        vision_cfg={"image_size": 32, "patch_size": 16, "width": IMG_W, "layers": 1, "head_width": 8,
                    "attentional_pool": True, "attn_pooler_queries": 4, "attn_pooler_heads": 8,
                    "output_tokens": True},
    )  # fmt: skip


def test_state_dict_maps_onto_open_clip_coca():
    decoder, coca = _decoder().eval(), _tiny_coca().eval()
    state = decoder.state_dict()
    decoder_part = {
        k.removeprefix("text_decoder."): v for k, v in state.items() if k.startswith("text_decoder.")
    }
    pool_part = {k.removeprefix("image_pool."): v for k, v in state.items() if k.startswith("image_pool.")}
    norm_part = {k.removeprefix("image_norm."): v for k, v in state.items() if k.startswith("image_norm.")}
    assert len(decoder_part) + len(pool_part) + len(norm_part) == len(state)
    coca.text_decoder.load_state_dict(decoder_part, strict=True)
    coca.visual.attn_pool.load_state_dict(pool_part, strict=True)
    coca.visual.ln_post.load_state_dict(norm_part, strict=True)

    image_embs, text_embs = torch.randn(3, 4, W), torch.randn(3, 6, W)
    with torch.no_grad():
        ours = decoder(image_embs, text_embs, image_encoded=True)  # (3, 6, V)
        theirs = coca.text_decoder(image_embs, text_embs)
    assert ours.shape == (3, 6, V) and torch.allclose(ours, theirs, atol=1e-6)
    vit_tokens = torch.randn(3, 5, IMG_W)
    with torch.no_grad():
        assert torch.allclose(
            decoder.encode_image(vit_tokens),
            coca.visual.ln_post(coca.visual.attn_pool(vit_tokens)),
            atol=1e-6,
        )


def test_projection_is_initialised():
    projection = _decoder().text_decoder.text_projection
    assert torch.isfinite(projection).all()
    assert projection.std().item() == pytest.approx(W**-0.5, rel=0.2)


def test_causal_unless_parallel():
    decoder = _decoder().eval()
    image, text = torch.randn(2, 5, IMG_W), torch.randn(2, 6, W)
    changed = text.clone()
    changed[:, -1] = torch.randn(2, W)  # only the last input position differs
    with torch.no_grad():
        causal = decoder(image, text), decoder(image, changed)
        both = torch.tensor([True, True])
        parallel = decoder(image, text, parallel=both), decoder(image, changed, parallel=both)
        mixed = decoder(image, text, parallel=torch.tensor([False, True]))
    assert torch.allclose(causal[0][:, :-1], causal[1][:, :-1], atol=1e-6)  # earlier positions blind to it
    assert not torch.allclose(parallel[0][:, 0], parallel[1][:, 0], atol=1e-4)  # full attention sees it
    assert torch.allclose(mixed[0], causal[0][0], atol=1e-6) and torch.allclose(
        mixed[1], parallel[0][1], atol=1e-6
    )


def test_without_pooler_image_tokens_go_straight_to_cross_attention():
    decoder = CaptionDecoder(V, W, layers=1, heads=4, context_length=CTX, image_width=W, n_queries=None)
    tokens = torch.randn(2, 7, W)
    assert decoder.encode_image(tokens) is tokens
    with pytest.raises(ValueError):
        CaptionDecoder(V, W, layers=1, heads=4, context_length=CTX, image_width=IMG_W, n_queries=None)


def _scripted(script):
    """next_logits that follows ``script[t]`` (a token per step) for every row, EOT once it runs out."""

    def next_logits(ids, rows):
        step = ids.shape[1] - 1
        token = script[step] if step < len(script) else EOT
        logits = torch.zeros(ids.shape[0], V)
        logits[:, token] = 5.0
        return logits

    return next_logits


def test_greedy_stops_at_the_end_token():
    out = greedy(_scripted([5, 6, 7]), batch=2, max_len=CTX, min_len=0, sot_id=SOT, eot_id=EOT, pad_id=PAD)
    assert out.tolist() == [[SOT, 5, 6, 7, EOT]] * 2  # stops right after EOT, not at max_len


def test_greedy_respects_min_and_max_length():
    early = greedy(_scripted([EOT]), batch=1, max_len=CTX, min_len=3, sot_id=SOT, eot_id=EOT, pad_id=PAD)
    assert EOT not in early[0, 1:4].tolist()  # no end token among the first 3 generated
    long = greedy(_scripted([5] * 20), batch=1, max_len=6, min_len=0, sot_id=SOT, eot_id=EOT, pad_id=PAD)
    assert long.shape == (1, 6)


def test_beam_search_finds_the_likelier_caption_greedy_misses():
    # step 1: token 5 (p=.6) or 6 (p=.4); after 5 every token is unlikely (EOT p~.1); after 6, EOT p~.9
    def next_logits(ids, rows):
        logits = torch.full((ids.shape[0], V), -20.0)
        if ids.shape[1] == 1:
            logits[:, 5], logits[:, 6] = torch.tensor(0.6).log(), torch.tensor(0.4).log()
        else:
            after_six = ids[:, 1] == 6
            logits[:, 3:] = torch.where(after_six.unsqueeze(1), -20.0, torch.tensor(0.1).log())
            logits[:, EOT] = torch.where(after_six, torch.tensor(0.9).log(), torch.tensor(0.1).log())
        return logits

    kwargs = {"max_len": 4, "min_len": 0, "sot_id": SOT, "eot_id": EOT, "pad_id": PAD}
    assert greedy(next_logits, batch=1, **kwargs)[0, 1].item() == 5
    assert beam_search(next_logits, batch=2, num_beams=3, **kwargs).tolist() == [[SOT, 6, EOT]] * 2


def test_real_decoder_generation_is_deterministic_and_well_formed():
    decoder, embed = _decoder().eval(), TokenEmbedding(V, W, CTX, mask_token=False)
    step = decoder_next_logits(decoder, torch.randn(3, 5, IMG_W), embed)
    kwargs = {"batch": 3, "max_len": CTX, "min_len": 0, "sot_id": SOT, "eot_id": EOT, "pad_id": PAD}
    first, second = greedy(step, **kwargs), greedy(step, **kwargs)
    assert torch.equal(first, second)
    for out in (first, beam_search(step, num_beams=3, **kwargs), sample(step, temperature=2.0, **kwargs)):
        assert (out[:, 0] == SOT).all() and out.shape[1] <= CTX
        for row in out.tolist():
            if EOT in row:
                assert all(t == PAD for t in row[row.index(EOT) + 1 :])


def test_decoder_next_logits_pads_for_fixed_length_text_towers():
    decoder, embed = _decoder().eval(), TokenEmbedding(V, W, CTX, mask_token=False)
    seen = []

    def fixed_length_embed(ids):
        seen.append(ids.shape[1])
        return embed(ids)

    image = torch.randn(2, 5, IMG_W)
    padded = decoder_next_logits(decoder, image, fixed_length_embed, pad_to=CTX, pad_id=PAD)
    plain = decoder_next_logits(decoder, image, embed)
    ids, rows = torch.tensor([[SOT, 4, 5], [SOT, 6, 7]]), torch.arange(2)
    with torch.no_grad():
        assert torch.allclose(padded(ids, rows), plain(ids, rows), atol=1e-5)
    assert seen == [CTX]


CAPTIONS = torch.tensor(
    [
        [SOT, 5, 6, 7, EOT, PAD, PAD, PAD, PAD],
        [SOT, 8, 9, EOT, PAD, PAD, PAD, PAD, PAD],
        [SOT, 10, 11, 3, 4, EOT, PAD, PAD, PAD],
        [SOT, 3, EOT, PAD, PAD, PAD, PAD, PAD, PAD],
    ]
)  # (4, CTX + 1): teacher forcing gives CTX inputs


def _train(parallel_fraction, steps):
    torch.manual_seed(0)
    decoder, embed = _decoder(), TokenEmbedding(V, W, CTX)
    images = torch.randn(4, 5, IMG_W)
    inputs, targets = teacher_forcing(CAPTIONS)
    params = [*decoder.parameters(), *embed.parameters()]
    optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        x, parallel = parallel_prediction_inputs(inputs, embed.mask_id, parallel_fraction, generator=gen)
        loss = caption_loss(decoder(images, embed(x), parallel=parallel), targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return decoder.eval(), embed, images, losses


def test_small_decoder_learns_toy_captions_and_greedy_reproduces_them():
    decoder, embed, images, losses = _train(parallel_fraction=0.0, steps=30)
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:5]) / 5
    step = decoder_next_logits(decoder, images, embed)
    out = greedy(step, batch=4, max_len=CTX + 1, min_len=0, sot_id=SOT, eot_id=EOT, pad_id=PAD)
    assert torch.equal(out, CAPTIONS[:, : out.shape[1]])


def _eval_losses(decoder, embed, images):
    """Teacher-forced (causal) and parallel (all inputs masked, no causal mask) caption losses."""
    inputs, targets = teacher_forcing(CAPTIONS)
    masked, parallel = parallel_prediction_inputs(inputs, embed.mask_id, fraction=1.0)
    with torch.no_grad():
        causal = caption_loss(decoder(images, embed(inputs)), targets)["loss"].item()
        at_once = caption_loss(decoder(images, embed(masked), parallel=parallel), targets)["loss"].item()
    return causal, at_once


def test_parallel_prediction_training_lowers_both_losses():
    torch.manual_seed(0)
    before = _eval_losses(_decoder().eval(), TokenEmbedding(V, W, CTX), torch.randn(4, 5, IMG_W))
    decoder, embed, images, _ = _train(parallel_fraction=0.75, steps=40)  # same seed: same init
    after = _eval_losses(decoder, embed, images)
    assert after[0] < 0.5 * before[0] and after[1] < 0.5 * before[1]
