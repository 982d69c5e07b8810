import pytest

from synclip.config import ConfigError, list_recipes, load_config


def test_shipped_recipe_loads_with_overrides():
    cfg = load_config(
        "clip", ["train.lr=5e-4", "train.epochs=3", "objectives.clip.weight=0.5", "model.name=micro-vit-32"]
    )
    assert cfg.train.lr == 5e-4 and cfg.train.epochs == 3
    assert cfg.objectives["clip"]["weight"] == 0.5
    assert cfg.model.name == "micro-vit-32"
    assert "clip" in list_recipes()


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.lrr=1", r"unknown key\(s\) \['lrr'\] in train; valid keys: .*lr"),
        ("trian.lr=1", r"unknown key\(s\) \['trian'\] in config; valid keys: .*train"),
        ("train.epochs=ten", r"train.epochs must be int or float, got 'ten'"),
        ("train.precision=fp8", "train.precision must be fp32, bf16 or fp16"),
        (
            "objectives.clip.temprature=0.1",
            r"objectives.clip: unknown option\(s\) \['temprature'\]; valid: .*init_logit_scale",
        ),
        ("objectives.simclrr.weight=1", "unknown objective 'simclrr'; known: .*clip"),
        ("train.lr", "must look like key=value"),
    ],
)
def test_bad_config_is_an_error_that_lists_valid_keys(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("clip", [override])


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown recipe 'clipp'; known: .*clip"):
        load_config("clipp")


def test_int_is_accepted_for_float_but_bool_is_not_an_int():
    assert load_config("clip", ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError):
        load_config("clip", ["train.epochs=true"])
