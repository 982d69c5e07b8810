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


def test_flip_pools_by_average_and_tunes_unmasked_for_one_percent():
    from synclip.config import stage_configs
    from synclip.models import create_model

    cfg = load_config("flip")
    assert create_model(cfg.model.name).visual.pool_type == "avg"  # FLIP: clr.img_avg_token = True
    stages = dict(stage_configs(cfg))
    masked, unmasked = stages["masked"].train, stages["unmasked"].train
    assert unmasked.epochs / masked.epochs == 0.01 and unmasked.lr / masked.lr == 0.01  # FLIP README


def test_fractional_epochs_train_at_least_one_step():
    assert load_config("clip", ["train.epochs=0.1"]).train.epochs == 0.1
    import pytest

    from synclip.config import ConfigError

    with pytest.raises(ConfigError, match="epochs"):
        load_config("clip", ["train.epochs=0"])
