"""Caption generation: greedy, sampling (temperature) and beam search over a next-token function.

The search only needs ``next_logits(ids, rows) -> (R, V)``: the logits of the token after each
prefix ``ids`` (R, t), where ``rows`` (R,) says which image of the batch each prefix belongs to.
:func:`decoder_next_logits` builds it from a :class:`~synclip.models.caption_decoder.CaptionDecoder`,
the image tower's tokens and a function that embeds token ids (the CoCa text tower or CapPa's
:class:`~synclip.models.caption_decoder.TokenEmbedding`).

Why not open_clip's ``CoCa.generate``: it needs a whole open_clip ``CoCa`` (its own image tower,
text tower and ``_encode_image``), and the ``transformers`` package for its logits processors and
``BeamSearchScorer`` (removed from recent ``transformers`` releases); synclip's towers are a
``TwoTower``. The defaults follow that method where it states one: at most 30 tokens
(``seq_len=30``), no end token before 5 tokens (``min_seq_len=5``, counting the start token: 4
generated tokens), 6 beams, and HF's length penalty 1.0 (a beam's score is its summed
log-probability / its length ** 1.0). open_clip splits its 6 beams into 3 groups
(``num_beam_groups=3``); we run plain beam search (Sutskever et al. 2014,
https://arxiv.org/abs/1409.3215) instead. ``min_len`` counts generated tokens (the end token
included, the start token not): ours ``min_len`` is open_clip's ``min_seq_len - 1``; ``max_len``
counts the start token, as its ``seq_len``. Greedy and sampling end a caption that reaches
``max_len`` with the end token, as ``CoCa.generate`` does (its ``top_k`` / ``top_p`` loop), so that
greedy here and ``CoCa.generate(generation_type="top_k", top_k=1, seq_len=max_len,
min_seq_len=min_len + 1)`` give the same token ids on the same decoder (a test checks it on an
exported ``coca`` checkpoint). No key-value cache: every step re-runs the decoder on the whole prefix.

Open_clip token conventions: start ``49406``, end ``49407``, pad ``0``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SOT_ID = 49406  # open_clip's tokenizer: <start_of_text>
EOT_ID = 49407  # <end_of_text>
PAD_ID = 0
MAX_LEN = 30  # open_clip CoCa.generate(seq_len=30), start token included
MIN_LEN = 4  # open_clip CoCa.generate(min_seq_len=5), which counts the start token
NUM_BEAMS = 6  # open_clip CoCa.generate(num_beams=6)
LENGTH_PENALTY = 1.0  # transformers' BeamSearchScorer default, used by open_clip

NextLogits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def decoder_next_logits(
    decoder,
    image_tokens: torch.Tensor,
    embed: Callable[[torch.Tensor], torch.Tensor],
    pad_to: int | None = None,
    pad_id: int = PAD_ID,
) -> NextLogits:
    """``next_logits`` for ``decoder`` on the image tower's tokens (B, P, W_img), encoded once.

    ``embed`` maps ids (R, t) to decoder inputs (R, t, W). A text tower with a fixed context length
    (e.g. ``TwoTower.text_outputs``) gets prefixes right-padded with ``pad_id`` to ``pad_to``: its
    causal mask keeps the prefix's features independent of the padding.
    """
    image = decoder.encode_image(image_tokens)  # (B, Q, W)

    def next_logits(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if pad_to is not None and t < pad_to:
            ids = torch.cat([ids, ids.new_full((ids.shape[0], pad_to - t), pad_id)], dim=1)  # (R, pad_to)
        text = embed(ids)[:, :t]  # (R, t, W)
        logits = decoder(image[rows], text, image_encoded=True)  # (R, t, V)
        return logits[:, -1]  # (R, V)

    return next_logits


def _forbid_end(logits: torch.Tensor, step: int, min_len: int, eot_id: int) -> torch.Tensor:
    """No end token before ``min_len`` generated tokens (open_clip's MinLengthLogitsProcessor)."""
    if step < min_len:
        logits = logits.clone()
        logits[:, eot_id] = float("-inf")
    return logits


def _left_to_right(
    next_logits: NextLogits,
    choose: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    device: torch.device | str,
    max_len: int,
    min_len: int,
    sot_id: int,
    eot_id: int,
    pad_id: int,
) -> torch.Tensor:
    ids = torch.full((batch, 1), sot_id, dtype=torch.long, device=device)  # (B, 1)
    rows = torch.arange(batch, device=device)  # (B,)
    done = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,)
    for step in range(max_len - 1):
        logits = _forbid_end(next_logits(ids, rows).float(), step, min_len, eot_id)  # (B, V)
        token = choose(logits)  # (B,)
        if step == max_len - 2:  # the last position: an unfinished caption ends here (open_clip)
            token = torch.full_like(token, eot_id)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        ids = torch.cat([ids, token.unsqueeze(1)], dim=1)  # (B, t + 1)
        done = done | (token == eot_id)
        if bool(done.all()):
            break
    return ids


@torch.no_grad()
def greedy(
    next_logits: NextLogits,
    batch: int,
    device: torch.device | str = "cpu",
    max_len: int = MAX_LEN,
    min_len: int = MIN_LEN,
    sot_id: int = SOT_ID,
    eot_id: int = EOT_ID,
    pad_id: int = PAD_ID,
) -> torch.Tensor:
    """Token ids (batch, <= max_len): SOT, then the argmax token each step until EOT, then ``pad_id``;
    a caption that reaches ``max_len`` ends with EOT.

    Deterministic (a temperature would not change the argmax). Stops once every row has emitted EOT.
    """
    return _left_to_right(
        next_logits,
        lambda logits: logits.argmax(dim=-1),
        batch,
        device,
        max_len,
        min_len,
        sot_id,
        eot_id,
        pad_id,
    )


@torch.no_grad()
def sample(
    next_logits: NextLogits,
    batch: int,
    device: torch.device | str = "cpu",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_len: int = MAX_LEN,
    min_len: int = MIN_LEN,
    sot_id: int = SOT_ID,
    eot_id: int = EOT_ID,
    pad_id: int = PAD_ID,
) -> torch.Tensor:
    """As :func:`greedy`, drawing each token from ``softmax(logits / temperature)`` with ``generator`` (CPU)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")

    def choose(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits / temperature, dim=-1).cpu()  # (B, V)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)  # (B,)

    return _left_to_right(next_logits, choose, batch, device, max_len, min_len, sot_id, eot_id, pad_id)


@torch.no_grad()
def beam_search(
    next_logits: NextLogits,
    batch: int,
    device: torch.device | str = "cpu",
    num_beams: int = NUM_BEAMS,
    max_len: int = MAX_LEN,
    min_len: int = MIN_LEN,
    temperature: float = 1.0,
    length_penalty: float = LENGTH_PENALTY,
    sot_id: int = SOT_ID,
    eot_id: int = EOT_ID,
    pad_id: int = PAD_ID,
) -> torch.Tensor:
    """The best-scoring caption per image, token ids (batch, <= max_len) padded with ``pad_id``.

    Scores are summed ``log_softmax(logits / temperature)``; a finished caption (EOT, or ``max_len``
    reached) is ranked by score / length ** ``length_penalty``. Each step keeps the ``num_beams``
    best unfinished prefixes per image among the 2 * ``num_beams`` best extensions; an image is done
    when it holds ``num_beams`` finished captions and no open beam can still beat the worst of them.
    """
    k = num_beams
    rows = torch.arange(batch, device=device).repeat_interleave(k)  # (B * K,), image of each beam
    ids = torch.full((batch * k, 1), sot_id, dtype=torch.long, device=device)  # (B * K, 1)
    scores = torch.full((batch, k), float("-inf"), device=device)  # (B, K)
    scores[:, 0] = 0.0  # one live beam to start with, so the K beams do not repeat each other
    finished: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(batch)]
    done = [False] * batch

    def add(b: int, score: float, seq: torch.Tensor) -> None:
        finished[b].append((score / max(seq.numel() - 1, 1) ** length_penalty, seq))
        finished[b].sort(key=lambda item: -item[0])
        del finished[b][k:]

    for step in range(max_len - 1):
        logits = _forbid_end(next_logits(ids, rows).float(), step, min_len, eot_id)  # (B * K, V)
        logp = torch.log_softmax(logits / temperature, dim=-1)  # (B * K, V)
        vocab = logp.shape[-1]
        total = (scores.view(-1, 1) + logp).view(batch, k * vocab)  # (B, K * V)
        top_scores, top_index = total.topk(2 * k, dim=1)  # (B, 2K) each
        next_scores = torch.full_like(scores, float("-inf"))  # (B, K)
        extended = torch.cat([ids, ids.new_full((batch * k, 1), pad_id)], dim=1)  # (B * K, t + 1)
        for b in range(batch):
            if done[b]:
                continue
            kept = 0
            for score, index in zip(top_scores[b].tolist(), top_index[b].tolist()):
                if score == float("-inf") or kept == k:
                    break
                beam, token = divmod(index, vocab)
                seq = torch.cat([ids[b * k + beam], ids.new_tensor([token])])  # (t + 1,)
                if token == eot_id:
                    add(b, score, seq)
                    continue
                extended[b * k + kept] = seq
                next_scores[b, kept] = score
                kept += 1
            best_open = next_scores[b].max().item()
            worst = finished[b][-1][0] if len(finished[b]) == k else float("-inf")
            reachable = best_open / max(step + 1, 1) ** length_penalty  # HF's is_done estimate
            done[b] = len(finished[b]) == k and (kept == 0 or reachable <= worst)
        ids, scores = extended, next_scores
        if all(done):
            break
    for b in range(batch):  # beams still open at max_len compete as they are
        for beam in range(k):
            if not done[b] and scores[b, beam] > float("-inf"):
                add(b, scores[b, beam].item(), ids[b * k + beam])
    best = [finished[b][0][1] for b in range(batch)]
    out = torch.full((batch, max(len(s) for s in best)), pad_id, dtype=torch.long, device=device)
    for b, seq in enumerate(best):
        out[b, : len(seq)] = seq
    return out
