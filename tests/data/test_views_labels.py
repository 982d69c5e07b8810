"""Label views (text_prompt, target, entity) and the image-label source kinds, on real samples."""

import random

import pytest
import torch

from synclip.data.collate import collate
from synclip.data.entities import build_vocabulary, read_vocabulary, source_entities
from synclip.data.sources import CsvImageText, build_source
from synclip.data.sources.labelled import fashion_mnist
from synclip.data.templates import get_templates
from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views
from synclip.data.views.entity import normalise_entity
from synclip.data.views.prompt import stable_label


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer(77)


@pytest.fixture(scope="module")
def fmnist():
    return fashion_mnist("test")


def test_text_prompt_draws_one_unicl_template_per_sample_reproducibly(tok, fmnist):
    view = make_views({"text_prompt": {}}, tok, train=True)
    sample = fmnist[0]  # an ankle boot
    prompts = set()
    for seed in range(40):
        random.seed(seed)  # what the loader does per sample
        prompts.add(tuple(view(sample)["text_prompt"].tolist()))
    allowed = {tuple(tok([t.replace("{}", sample["class_name"])])[0].tolist())
               for t in [*get_templates("openai_imagenet"), "{}."]}  # fmt: skip
    assert len(allowed) == 81 and prompts <= allowed and len(prompts) > 20
    random.seed(7)
    first = view(sample)["text_prompt"]
    random.seed(7)
    assert torch.equal(first, view(sample)["text_prompt"])


def test_text_prompt_at_evaluation_is_the_first_template(tok, fmnist, tmp_path):
    sample = fmnist[0]
    view = make_views({"text_prompt": {"templates": "fashion"}}, tok, train=False)
    assert torch.equal(view(sample)["text_prompt"], tok([sample["class_name"]])[0])  # FASHION[0] = "{}"
    path = tmp_path / "templates.txt"
    path.write_text("a sketch of a {}.\nan origami {}.\n")
    view = make_views({"text_prompt": {"templates": str(path)}}, tok, train=False)
    assert torch.equal(view(sample)["text_prompt"], tok([f"a sketch of a {sample['class_name']}."])[0])


def test_text_prompt_errors_say_what_to_do(tok, emoji_subset):
    with pytest.raises(ValueError, match="neither a template set"):
        make_views({"text_prompt": {"templates": "no-such-set"}}, tok, train=True)
    view = make_views({"text_prompt": {}}, tok, train=True)
    with pytest.raises(KeyError, match="class_name"):  # an image-text sample has no class name
        view(CsvImageText(emoji_subset, caption_key="caption")[0])


def test_target_shares_labels_between_equal_captions_and_equal_class_names(tok, fmnist):
    view = make_views({"target": {}}, tok, train=True)
    a = view({"caption": "joker", "key": "a"})["target"]
    b = view({"caption": "joker", "key": "b"})["target"]
    c = view({"caption": "mahjong red dragon", "key": "c"})["target"]
    assert a == b != c
    boot = view(fmnist[0])["target"]  # class "ankle boot" from Fashion-MNIST ...
    folder = view({"class_name": "ankle boot", "label": 3, "key": "x"})["target"]  # ... and an image folder
    assert boot == folder == stable_label("class:ankle boot") != view({"caption": "ankle boot"})["target"]
    batch = collate([{"target": a, "key": 0}, {"target": boot, "key": 1}])
    assert batch["target"].dtype == torch.int64 and (batch["target"] >= 0).all()


def test_entity_fields_normalisation_and_collate(tok, emoji_subset):
    assert normalise_entity("Man technologist: medium skin tone") == "man technologist"
    assert normalise_entity("man technologist medium-dark skin tone") == "man technologist"
    assert normalise_entity("man light skin tone red hair") == "man red hair"
    sample = {"caption": "Santa Claus light skin tone", "category": "People & Body", "key": "k"}
    assert make_views({"entity": {}}, tok, True)(sample)["entity"] == "Santa Claus light skin tone"
    views = make_views({"entity": {"field": "caption", "normalise": True}}, tok, True)
    assert views(sample)["entity"] == "santa claus"
    assert make_views({"entity": {"field": "category"}}, tok, True)(sample)["entity"] == "People & Body"
    with pytest.raises(ValueError, match="field must be one of"):
        make_views({"entity": {"field": "colour"}}, tok, True)
    batch = collate([{"entity": "a", "key": 0}, {"entity": "b", "key": 1}])
    assert batch["entity"] == ["a", "b"]


def test_vocabulary_from_sources_without_decoding_images(emoji_corpus, monkeypatch):
    import synclip.data.sources.csv_pairs as sources

    pairs = CsvImageText(emoji_corpus / "twemoji.tsv", caption_key="caption")
    monkeypatch.setattr(sources, "load_rgb", lambda *a: pytest.fail("decoded an image"))
    entities = list(source_entities(pairs, "caption", normalise=True))
    assert len(entities) == len(pairs) and entities[0] == "mahjong red dragon"
    vocab = build_vocabulary(entities)
    # skin-tone variants merge; the modifier emoji themselves ("light skin tone") normalise to "", dropped
    assert vocab == sorted(set(entities) - {""}) and len(vocab) < len(pairs) // 2
    assert "santa claus" in vocab and not any("skin tone" in e for e in vocab)
    shared = build_vocabulary(entities, min_count=2)
    assert shared and all(entities.count(e) >= 2 for e in shared) and set(shared) < set(vocab)
    with pytest.raises(ValueError, match="lower min_count"):
        build_vocabulary(entities, min_count=10_000)
    labels = build_vocabulary(source_entities(fashion_mnist("test")))
    assert labels == sorted(["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt",
                             "sneaker", "bag", "ankle boot"])  # fmt: skip


def test_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("zebra\n\nant\n")
    assert read_vocabulary(path) == ["zebra", "ant"]  # file order is the class order
    path.write_text("ant\nant\n")
    with pytest.raises(ValueError, match="twice"):
        read_vocabulary(path)
    with pytest.raises(FileNotFoundError, match="one entity per line"):
        read_vocabulary(tmp_path / "missing.txt")


def test_label_source_kinds(emoji_corpus):
    fm = build_source("labels", {"kind": "fashion_mnist", "split": "test"})
    assert len(fm) == 10_000 and fm[0]["class_name"] == "ankle boot"
    digits = build_source("digits", {"kind": "mnist5k"})
    assert len(digits) == 5000 and digits[0]["class_name"] == digits.classes[digits[0]["label"]]
    cats = build_source("labels", {"kind": "emoji_labels", "level": "category"})
    sub = build_source("labels", {"kind": "emoji_labels", "level": "subcategory"})
    assert len(cats.classes) == 10 and "Smileys & Emotion" in cats.classes and len(sub.classes) > 50
    s = sub[0]
    assert s["class_name"] == "game" and sub.classes[s["label"]] == "game" and s["image"].size[0] > 0
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        build_source("labels", {"kind": "fashion_mnist", "split": "val"})
    with pytest.raises(ValueError, match="level must be one of"):
        build_source("labels", {"kind": "emoji_labels", "level": "codepoints"})
    with pytest.raises(ValueError, match="unknown option"):
        build_source("labels", {"kind": "mnist5k", "split": "train"})
