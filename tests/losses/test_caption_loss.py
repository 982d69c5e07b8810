import math

import pytest
import torch

from dist_utils import run_distributed
from synclip.losses.caption import caption_loss, parallel_prediction_inputs, teacher_forcing

# open_clip layout: SOT=49406 is out of this toy vocabulary, so use small ids: 1 = SOT, 2 = EOT, 0 = pad
TOKENS = torch.tensor(
    [
        [1, 5, 6, 7, 2, 0, 0, 0],
        [1, 4, 2, 0, 0, 0, 0, 0],
        [1, 3, 3, 3, 3, 6, 2, 0],
    ]
)


def test_teacher_forcing_shifts_by_one():
    inputs, targets = teacher_forcing(TOKENS)
    assert torch.equal(inputs, TOKENS[:, :-1]) and torch.equal(targets, TOKENS[:, 1:])


@pytest.mark.parametrize("reduction", ["tokens", "captions"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_logits_at_pad_targets_change_nothing(reduction, smoothing):
    _, targets = teacher_forcing(TOKENS)  # (3, 7)
    logits = torch.randn(3, 7, 9, requires_grad=True)
    base = caption_loss(logits, targets, label_smoothing=smoothing, reduction=reduction)["loss"]
    base.backward()
    pad = targets == 0
    assert (logits.grad[pad] == 0).all() and (logits.grad[~pad] != 0).any()
    noisy = logits.detach().clone()
    noisy[pad] = 100 * torch.randn(int(pad.sum()), 9)
    again = caption_loss(noisy, targets, label_smoothing=smoothing, reduction=reduction)["loss"]
    assert again.item() == pytest.approx(base.item(), rel=1e-6)


def _hand_nll(logits, targets):
    """-log softmax of each real target, computed element by element; {row: [nll, ...]}."""
    out = {}
    for i in range(targets.shape[0]):
        for j in range(targets.shape[1]):
            if targets[i, j] == 0:
                continue
            row = logits[i, j].tolist()
            log_z = math.log(sum(math.exp(v) for v in row))
            out.setdefault(i, []).append(log_z - row[targets[i, j]])
    return out


def test_reductions_match_hand_computation():
    _, targets = teacher_forcing(TOKENS)
    logits = torch.randn(3, 7, 9, dtype=torch.float64)
    nll = _hand_nll(logits, targets)
    all_tokens = [v for row in nll.values() for v in row]
    assert len(all_tokens) == 4 + 2 + 6  # every real target, EOT included
    tokens = caption_loss(logits, targets, reduction="tokens")
    assert tokens["loss"].item() == pytest.approx(sum(all_tokens) / len(all_tokens), rel=1e-12)
    assert tokens["tokens"].item() == 12
    captions = caption_loss(logits, targets, reduction="captions")["loss"]
    per_caption = [sum(row) / len(row) for row in nll.values()]
    assert captions.item() == pytest.approx(sum(per_caption) / 3, rel=1e-12)


def test_tokens_reduction_is_open_clips_coca_caption_loss():
    _, targets = teacher_forcing(TOKENS)
    logits = torch.randn(3, 7, 9)
    reference = torch.nn.CrossEntropyLoss(ignore_index=0)(logits.permute(0, 2, 1), targets)
    assert caption_loss(logits, targets)["loss"].item() == pytest.approx(reference.item(), rel=1e-6)


def test_accuracy_counts_real_tokens_only():
    _, targets = teacher_forcing(TOKENS)
    logits = torch.nn.functional.one_hot(targets, 9).float()  # right everywhere, pads included
    logits[0, 0] = 0.0
    logits[0, 0, 8] = 1.0  # one real token wrong
    assert caption_loss(logits, targets)["acc"].item() == pytest.approx(11 / 12)


def _caption_shard(rank, world, logits, targets):
    part = logits[rank : rank + 1].clone().requires_grad_(True)  # one caption per rank
    loss = caption_loss(part, targets[rank : rank + 1])["loss"]
    loss.backward()
    return {"loss": loss.detach(), "grad": part.grad}


@pytest.mark.distributed
def test_distributed_token_mean_equals_global_batch():
    _, targets = teacher_forcing(TOKENS[:2])  # 4 and 2 real targets: unequal counts per rank
    logits = torch.randn(2, 7, 9, dtype=torch.float64)
    results = run_distributed(_caption_shard, 2, logits, targets)
    whole = logits.clone().requires_grad_(True)
    reference = caption_loss(whole, targets)["loss"]
    reference.backward()
    assert torch.allclose(torch.stack([r["loss"] for r in results]).mean(), reference, atol=1e-12)
    assert torch.allclose(torch.cat([r["grad"] for r in results]) / 2, whole.grad, atol=1e-12)


def test_parallel_prediction_masks_every_input_token_of_chosen_captions():
    inputs, _ = teacher_forcing(TOKENS.repeat(400, 1))  # (1200, 7)
    gen = torch.Generator().manual_seed(0)
    masked, parallel = parallel_prediction_inputs(inputs, mask_id=9, generator=gen)  # default 0.75
    assert (masked[parallel] == 9).all()  # all input tokens, pads included, become [MASK]
    assert torch.equal(masked[~parallel], inputs[~parallel])
    assert parallel.float().mean().item() == pytest.approx(0.75, abs=0.04)
    none, flags = parallel_prediction_inputs(inputs, mask_id=9, fraction=0.0)
    assert torch.equal(none, inputs) and not flags.any()
    every, flags = parallel_prediction_inputs(inputs, mask_id=9, fraction=1.0)
    assert (every == 9).all() and flags.all()


def test_parallel_prediction_per_batch_masks_all_or_nothing():
    inputs, _ = teacher_forcing(TOKENS)
    gen = torch.Generator().manual_seed(1)
    outcomes = set()
    for _ in range(40):
        masked, parallel = parallel_prediction_inputs(inputs, mask_id=9, per_batch=True, generator=gen)
        assert parallel.all() or not parallel.any()
        outcomes.add(bool(parallel[0]))
    assert outcomes == {True, False}


def test_parallel_prediction_follows_given_draws_and_checks_their_shape():
    inputs, _ = teacher_forcing(TOKENS)  # (3, 7)
    draws = torch.tensor([0.9, 0.1, 0.5])
    masked, parallel = parallel_prediction_inputs(inputs, mask_id=9, fraction=0.5, draws=draws)
    assert parallel.tolist() == [False, True, False]  # draw < fraction, caption by caption
    assert (masked[1] == 9).all() and torch.equal(masked[[0, 2]], inputs[[0, 2]])
    _, whole = parallel_prediction_inputs(inputs, mask_id=9, fraction=0.5, draws=draws, per_batch=True)
    assert not whole.any()  # the first draw decides for the whole batch
    with pytest.raises(ValueError, match="one number per caption"):
        parallel_prediction_inputs(inputs, mask_id=9, draws=torch.rand(2))
