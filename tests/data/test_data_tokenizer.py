import pickle

import torch

from synclip.data import get_tokenizer


def test_tokens_shape_and_special_ids():
    tok = get_tokenizer()
    out = tok(["a photo of a cat", "grinning face"])
    assert out.shape == (2, 77) and out.dtype == torch.long
    assert (tok.vocab_size, tok.sot_token_id, tok.eot_token_id, tok.pad_id) == (49408, 49406, 49407, 0)
    assert (out[:, 0] == tok.sot_token_id).all()
    n = int((out[0] != 0).sum())
    assert out[0, n - 1] == tok.eot_token_id and (out[0, n:] == 0).all()
    assert tok("a photo of a cat").shape == (1, 77)


def test_truncation_keeps_eot():
    tok = get_tokenizer(context_length=8)
    out = tok(["one two three four five six seven eight nine ten"])
    assert out.shape == (1, 8) and out[0, -1] == tok.eot_token_id and out[0, 0] == tok.sot_token_id
    assert (out[0, 1:-1] != 0).all()


def test_pickles_for_dataloader_workers():
    tok = get_tokenizer(context_length=16)
    copy = pickle.loads(pickle.dumps(tok))
    assert copy._bpe is None and copy.context_length == 16
    assert torch.equal(copy(["thumbs up"]), tok(["thumbs up"]))
