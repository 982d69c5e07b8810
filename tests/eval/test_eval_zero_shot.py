import pytest
import torch
import torch.nn.functional as F

from synclip.data.templates import TEMPLATE_SETS, get_templates, read_lines, resolve_templates
from synclip.eval.run import evaluate
from synclip.eval.zero_shot import build_classifier, fill, zero_shot_logits

# SLIP's templates.json "imagenet" entry (facebookresearch/SLIP @ d1de3e7).
SLIP_IMAGENET = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def test_prompt_ensemble_equals_naive_normalise_average_renormalise(clip_model, tokenize):
    classes = ["cat", "flag", "grinning face"]
    templates = ["{}", "an emoji of a {}.", "a drawing of a {c}."]
    classifier = build_classifier(clip_model, tokenize, classes, templates, "cpu", batch_size=4)
    assert classifier.shape == (32, 3)  # (D, C)
    with torch.no_grad():
        for c, name in enumerate(classes):
            per_template = []
            for t in templates:
                text = t.replace("{c}", name).replace("{}", name)
                emb = clip_model.encode_text(tokenize([text]))[0]  # unnormalised (D,)
                per_template.append(emb / emb.norm())
            expected = torch.stack(per_template).mean(0)
            expected = expected / expected.norm()
            assert torch.allclose(classifier[:, c], expected, atol=1e-5)


class _FixedTextModel(torch.nn.Module):
    """encode_text returns a fixed vector per text: the first token id picks a row of ``table``."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def encode_text(self, tokens, normalize=False):
        out = self.table[tokens[:, 0]]
        return F.normalize(out, dim=-1) if normalize else out


def test_ensembling_normalises_each_template_before_averaging():
    # class "x": template 0 -> (3, 0), template 1 -> (0, 1). Normalise-then-average gives the diagonal;
    # averaging the raw vectors would lean towards the long one, (0.95, 0.32).
    model = _FixedTextModel(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))

    def tokenizer(texts):
        return torch.tensor([[0 if t.startswith("long") else 1] for t in texts])

    classifier = build_classifier(model, tokenizer, ["x"], ["long {}", "short {}"])
    assert torch.allclose(classifier[:, 0], torch.tensor([2**-0.5, 2**-0.5]), atol=1e-6)


def test_zero_shot_logits_have_the_right_shape_and_scale(clip_model, tokenize):
    classifier = build_classifier(clip_model, tokenize, ["a", "b", "c", "d"], ["{}", "a {}."])
    images = torch.randn(5, 32)  # unnormalised on purpose: logits use cosine similarity
    logits = zero_shot_logits(images, classifier)
    assert logits.shape == (5, 4)
    assert logits.abs().max() <= 100.0 + 1e-3
    expected = 100 * F.normalize(images, dim=-1) @ classifier
    assert torch.allclose(logits, expected, atol=1e-4)


def test_fill_accepts_both_placeholders_and_rejects_none():
    assert fill("a photo of a {}.", "cat") == "a photo of a cat."
    assert fill("a photo of a {c}.", "cat") == "a photo of a cat."
    with pytest.raises(ValueError, match="placeholder"):
        fill("a photo", "cat")


def test_template_sets():
    assert len(get_templates("openai_imagenet")) == 80
    assert get_templates("openai_imagenet")[0] == "a bad photo of a {}."
    assert get_templates("slip_imagenet") == SLIP_IMAGENET
    assert get_templates("digits")[0] == 'a photo of the number: "{}".'  # CLIP's MNIST prompt
    for name in ("emoji", "fashion", "digits", "openai_imagenet", "slip_imagenet"):
        templates = get_templates(name)
        assert templates and all(isinstance(t, str) and "{}" in t for t in templates), name
        assert len(set(templates)) == len(templates), name
    get_templates("emoji").append("mutated")
    assert "mutated" not in TEMPLATE_SETS["emoji"]
    with pytest.raises(KeyError, match="known: emoji"):
        get_templates("imagenet")


def test_openai_imagenet_templates_are_clips_80():
    templates = get_templates("openai_imagenet")
    assert len(set(templates)) == 80
    assert "a photo of a {}." in templates and "itap of a {}." in templates
    assert templates[-1] == "a tattoo of the {}."  # the notebook's order, kept


def test_template_and_class_name_files(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# my prompts\na sketch of a {}.\n\n  a {c} sticker  \n", encoding="utf-8")
    name, templates = resolve_templates(str(path))
    assert name == f"file:{path.resolve()}" and templates == ["a sketch of a {}.", "a {c} sticker"]
    assert resolve_templates("slip_imagenet") == ("slip_imagenet", SLIP_IMAGENET)
    (tmp_path / "bad.txt").write_text("a sketch\n")
    with pytest.raises(ValueError, match="placeholder"):
        resolve_templates(str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="neither a template set"):
        resolve_templates(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="no lines"):
        read_lines(tmp_path / "empty.txt")


def test_a_template_file_replaces_every_zero_shot_set_and_is_recorded(
    clip_model, preprocess, tokenize, emoji_corpus, tmp_path
):
    path = tmp_path / "prompts.txt"
    path.write_text("a sketch of a {}.\n{} icon\n")
    kwargs = dict(tasks=["head_noun", "retrieval"], corpus_dir=emoji_corpus, limit=60)
    own = evaluate(clip_model, preprocess, tokenize, **kwargs)
    seen: set[str] = set()

    def recording(texts):
        seen.update(texts)
        return tokenize(texts)

    custom = evaluate(clip_model, preprocess, recording, templates=str(path), **kwargs)
    for style in ("twemoji", "openmoji"):
        entry = custom["tasks"][f"head_noun/{style}"]
        assert entry["templates"] == {
            "set": f"file:{path.resolve()}",
            "templates": ["a sketch of a {}.", "{} icon"],
        }
        assert own["tasks"][f"head_noun/{style}"]["templates"]["set"] == "emoji"
    assert "a sketch of a heart." in seen and "heart icon" in seen  # the prompts encoded
    assert "an emoji of a heart." not in seen
    assert custom["tasks"]["retrieval/twemoji"] == own["tasks"]["retrieval/twemoji"]  # captions as written
    assert custom["settings"]["templates"] == str(path)
    with pytest.raises(ValueError, match="neither a template set"):
        evaluate(clip_model, preprocess, tokenize, templates="imagenet_80", **kwargs)
