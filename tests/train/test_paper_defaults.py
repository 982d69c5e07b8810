"""Issue 19: optimizer and recipe defaults as the papers' code sets them."""

import torch
from torch import nn

from synclip.config import load_config
from synclip.train.optim import create_optimizer, set_lr


def _decayed_after_one_step(decoupled: bool, lr=1e-3, wd=1e-2, sched=0.5) -> float:
    layer = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    opt = create_optimizer(layer, lr, wd, (0.9, 0.98), 1e-6, decoupled=decoupled)
    set_lr(opt, sched * lr)  # the cosine schedule's lr_t at multiplier `sched`
    layer.weight.grad = torch.zeros_like(layer.weight)  # Adam's step is 0: only the decay moves it
    opt.step()
    return 1.0 - float(layer.weight.detach()[0, 0])


def test_decoupled_weight_decay_is_the_schedule_times_wd_as_big_vision():
    # big_vision/optax.py: chain(adam, scale(lr), add_decayed_weights(wd), scale_by_schedule, scale(-1))
    assert abs(_decayed_after_one_step(True) - 0.5 * 1e-2) < 1e-7
    # torch AdamW: lr_t * wd, 1000x weaker at lr 1e-3
    assert abs(_decayed_after_one_step(False) - 0.5 * 1e-3 * 1e-2) < 1e-7  # float32: 1 - 5e-6


def test_gradient_clipping_is_off_by_default_and_lit_copies_big_vision():
    assert load_config("clip").train.grad_clip_norm is None  # open_clip / CLIP and SLIP do not clip
    assert load_config("slip").train.grad_clip_norm is None
    lit = load_config("lit").train
    assert lit.decoupled_weight_decay and lit.weight_decay == 0.01 and lit.grad_clip_norm == 1.0


def test_slip_clip_view_crop_is_slips():
    assert load_config("slip").views["image"]["scale"] == [0.5, 1.0]  # SLIP main.py: scale=(0.5, 1.0)
