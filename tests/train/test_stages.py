"""Multi-stage recipes: how stage configs are built, and that weights pass from one stage to the next."""

import os

import pytest
import torch

from run_helpers import small_run_overrides
from synclip.config import ConfigError, load_config, merge_stage, stage_configs
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.train.loop import train


def test_merge_replaces_objectives_and_sources_but_merges_the_rest():
    base = {
        "model": {"name": "a", "patch_dropout": 0.5},
        "objectives": {"clip": {"weight": 1.0}},
        "data": {"sources": {"pairs": {"kind": "emoji"}}, "workers": 2},
    }
    changes = {
        "model": {"patch_dropout": 0.0},
        "objectives": {"mim_distill": {}},
        "data": {"sources": {"images": {"kind": "image_folder"}}},
    }
    out = merge_stage(base, changes)
    assert out["model"] == {"name": "a", "patch_dropout": 0.0}
    assert out["objectives"] == {"mim_distill": {}}  # the base's CLIP loss is not inherited
    assert out["data"] == {"sources": {"images": {"kind": "image_folder"}}, "workers": 2}
    assert base["model"]["patch_dropout"] == 0.5  # the base is not modified


def test_stage_folders_references_and_per_stage_overrides(tmp_path):
    cfg = load_config("flip", [f"train.out_dir={tmp_path}", "train.seed=3", "stages.unmasked.train.epochs=2"])
    (first, masked), (last, unmasked) = stage_configs(cfg)
    assert (first, last) == ("masked", "unmasked")
    assert masked.train.out_dir == str(tmp_path / "flip-s3" / "stages") and masked.train.name == "masked"
    assert masked.eval.at_end is False and masked.model.patch_dropout == 0.5 and masked.train.seed == 3
    # the last stage writes the run folder itself, and starts from the first stage's final checkpoint
    assert (unmasked.train.out_dir, unmasked.train.name) == (str(tmp_path), "flip-s3")
    assert unmasked.model.pretrained == str(tmp_path / "flip-s3" / "stages" / "masked" / "checkpoint.pt")
    assert unmasked.model.patch_dropout == 0.0 and unmasked.train.epochs == 2 and unmasked.train.seed == 3


@pytest.mark.parametrize(
    "stages, message",
    [
        ("{a: {model: {pretrained: 'stage:b'}}, b: {}}", "only earlier stages"),
        ("{a: {model: {pretrained: 'stage:zzz'}}}", "only earlier stages"),
        ("{a: {train: {epochs: 0}}}", "stages.a: train.epochs must be greater than 0"),
        ("{a: {model: {nope: 1}}}", "stages.a: unknown key"),
        ("{a: 3}", "stages.a must be a mapping"),
    ],
)
def test_bad_stages_fail_when_the_config_is_loaded(stages, message):
    with pytest.raises(ConfigError, match=message):
        load_config("clip", [f"stages={stages}"])


@pytest.mark.slow
def test_second_stage_starts_from_the_first_stage_weights_and_temperature(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.epochs": 1, "train.max_steps": 3})
    stages = "{first: {}, second: {model: {pretrained: 'stage:first'}, train: {lr: 0.0, max_steps: 2}}}"
    cfg = load_config("clip", [*overrides, f"stages={stages}", "train.name=two"])
    run_dir = train(cfg)
    assert run_dir == tmp_path / "two"
    first = read_synclip_checkpoint(tmp_path / "two" / "stages" / "first" / "checkpoint.pt")
    second = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    assert first["finished"] and second["finished"] and second["step"] == 2
    # with lr 0 the second stage cannot move anything: its final weights are the first stage's
    moved = [k for k in first["model"] if not torch.equal(first["model"][k], second["model"][k])]
    assert moved == []
    scale = "objectives.clip.logit_scale"
    assert torch.equal(first["recipe"][scale], second["recipe"][scale])
    assert first["recipe"][scale] != torch.tensor(1 / 0.07).log()  # the temperature had been learned

    # resuming the finished run trains no stage again
    stamp = (run_dir / "stages" / "first" / "checkpoint.pt").stat().st_mtime_ns
    again = load_config("clip", [*overrides, f"stages={stages}", "train.name=two", "train.resume=auto"])
    train(again)
    assert (run_dir / "stages" / "first" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert os.path.exists(run_dir / "metrics.jsonl")


@pytest.mark.slow
def test_a_continued_stage_carries_the_classifier_with_its_vocabulary(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.epochs": 1, "train.max_steps": 2})
    stages = "{first: {}, second: {model: {pretrained: 'stage:first'}, train: {lr: 0.0, max_steps: 1}}}"
    run_dir = train(load_config("mofi", [*overrides, f"stages={stages}", "train.name=m"]))
    first = read_synclip_checkpoint(run_dir / "stages" / "first" / "checkpoint.pt")["recipe"]
    second = read_synclip_checkpoint(run_dir / "checkpoint.pt")["recipe"]
    assert first.keys() == second.keys()
    for key, value in first.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, second[key]), key
        else:
            assert value == second[key], key  # the vocabulary the classifier rows belong to


@pytest.mark.slow
def test_eva_mim_hands_the_mim_tower_to_the_last_clip_stage(emoji_subset, tmp_path):
    """Stage 2 distils the stage-1 CLIP tower into a fresh tower; stage 3 starts its image tower from it."""
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.epochs": 1, "train.max_steps": 2})
    cfg = load_config("eva_mim", [*overrides, "stages.clip.train.lr=0.0", "train.name=eva"])
    run_dir = train(cfg)
    teacher = read_synclip_checkpoint(run_dir / "stages" / "teacher" / "checkpoint.pt")["model"]
    mim = read_synclip_checkpoint(run_dir / "stages" / "mim" / "checkpoint.pt")
    final = read_synclip_checkpoint(run_dir / "checkpoint.pt")["model"]
    visual = [k for k in final if k.startswith("visual.")]
    # the MIM stage trained a fresh image tower (not the teacher's) and left its text tower locked
    assert any(not torch.equal(teacher[k], mim["model"][k]) for k in visual)
    assert mim["config"]["objectives"].keys() == {"mim_distill"}
    assert mim["config"]["objectives"]["mim_distill"]["teacher"].endswith("stages/teacher/checkpoint.pt")
    # with lr 0 the last stage's image tower is exactly the MIM stage's
    assert all(torch.equal(final[k], mim["model"][k]) for k in visual)
