"""Config mistakes fail when the config is built, with one line naming the file or key."""

import pytest

from synclip.config import ConfigError, load_config


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.checkpoint_every=0", "train.checkpoint_every must be at least 1, got 0"),
        ("train.log_every=0", "train.log_every must be at least 1, got 0"),
        ("train.max_steps=-5", r"train.max_steps must be at least 1 \(or null\), got -5"),
        ("train.warmup_steps=-10", "train.warmup_steps must be at least 0, got -10"),
        ("train.lr=.nan", "train.lr must be at least 0, got nan"),
        ("train.beta2=1", "train.beta2 must be at least 0 and below 1, got 1.0"),
        ("data.max_bad_fraction=2", "data.max_bad_fraction must be at least 0 and at most 1"),
        ("data.workers=-1", "data.workers must be at least 0"),
        ("eval.limit=0", "eval.limit must be at least 1"),
    ],
)
def test_out_of_range_values_are_refused_when_the_config_is_built(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("clip", [override])


def test_an_unparsable_override_names_the_override():
    with pytest.raises(ConfigError, match=r"override 'train.lr=\[1': the value is not valid YAML"):
        load_config("clip", ["train.lr=[1"])


def test_a_recipe_with_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  lr: [1\n")
    with pytest.raises(ConfigError, match=rf"recipe file {path} is not valid YAML: .* at line \d+") as err:
        load_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just words\n", "str")])
def test_a_recipe_that_is_not_a_mapping_is_refused(tmp_path, text, kind):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{path} must be a mapping of sections .* not a {kind}"):
        load_config(path)


def test_a_recipe_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"recipe file {path} is not UTF-8"):
        load_config(path)


def _image_folder(root, emoji_corpus, n=40):
    images = sorted((emoji_corpus / "twemoji").glob("*.png"))
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for p in images[c * n : (c + 1) * n]:
            (root / name / p.name).write_bytes(p.read_bytes())
    return root


@pytest.mark.parametrize("recipe", ["clip", "slip"])
def test_an_image_folder_trains_text_recipes_with_class_prompts(recipe, emoji_corpus, tmp_path, run_args):
    """Issue 18, finding 3: a labelled source gives caption views its class names in prompt templates."""
    from synclip.train.loop import train

    root = _image_folder(tmp_path / "folder", emoji_corpus)
    source = f"data.sources={{pairs: {{kind: image_folder, root: {root}}}}}"
    cfg = load_config(recipe, [*run_args(), source, "train.max_steps=1", "train.batch_size=16"])
    assert (train(cfg) / "checkpoint.pt").is_file()


def test_class_prompts_become_captions_only_where_a_view_reads_them():
    from synclip.data.views.prompt import PromptCaptions
    from synclip.train.view_fields import prompted_views

    def identity(sample):
        return sample

    wrapped = prompted_views(identity, ["image", "text"], {}, "image_folder")
    assert isinstance(wrapped, PromptCaptions)
    assert "tabby cat" in wrapped({"class_name": "tabby cat", "label": 0, "key": "k"})["caption"]
    one = prompted_views(identity, ["text"], {"text_prompt": {"templates": "digits"}}, "image_folder")
    assert one.templates[0].count("{}") == 1 and "7" in one({"class_name": "7", "key": "k"})["caption"]
    assert prompted_views(identity, ["image", "target"], {}, "image_folder") is identity
    assert prompted_views(identity, ["image", "text"], {}, "csv") is identity


def test_a_class_view_over_pairs_is_a_config_error_with_the_fix(emoji_subset, run_args):
    """Refused when the recipe is built from the objectives' declared reads, before any data is loaded."""
    from synclip.train.loop import train

    with pytest.raises(
        ConfigError,
        match=r"objectives.clip reads view 'text_prompt', which needs the sample field 'class_name', but "
        r"data.sources.pairs \(kind csv\) gives only .*objectives.clip.text_view=text",
    ):
        train(load_config("clip", [*run_args(), "objectives.clip.text_view=text_prompt"]))


def test_every_shipped_recipe_passes_the_view_field_check():
    """Every stage of every shipped recipe reads only fields its sources give (objectives with a
    teacher are left out: their teacher is an earlier stage's checkpoint)."""
    from synclip.config import list_recipes, stage_configs
    from synclip.models import create_model
    from synclip.objectives.base import RunContext
    from synclip.recipe import Recipe
    from synclip.train.view_fields import view_field_problem

    model = create_model("micro-vit-32")
    for name in list_recipes():
        for _, cfg in stage_configs(load_config(name)):
            objectives = {n: o for n, o in cfg.objectives.items() if "teacher" not in (o or {})}
            if objectives:
                recipe = Recipe(model, objectives, RunContext(cfg.views, cfg.data.sources))
                assert view_field_problem(cfg, recipe) is None, name
