"""UniCL's synonym sampling: a class with several names draws one per sample, seeded per sample."""

import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from synclip.data.class_synonyms import WORDNET_DIR, class_names, with_wordnet_synonyms
from synclip.data.sources import build_source
from synclip.data.sources.labelled import FASHION_MNIST_CLASSES
from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views
from synclip.data.views.base import ViewDataset
from synclip.data.views.prompt import prompt_templates
from synclip.train.data import SeededItems

needs_wordnet = pytest.mark.skipif(
    not (Path(WORDNET_DIR) / "index.noun").is_file(), reason="apt-get install wordnet-base"
)
NAMES = ("alpha", "bravo", "charlie")  # no template contains them


def _which(prompt: str) -> str:
    (found,) = [n for n in NAMES if n in prompt]
    return found


def test_a_class_draws_each_of_its_names_uniformly_and_reproducibly():
    view = make_views({"text_prompt": {}}, lambda texts: texts, train=True)  # tokenizer: the text itself
    sample = {"class_name": "alpha", "synonyms": NAMES, "label": 0, "key": "k"}
    drawn = []
    for seed in range(3000):
        random.seed(seed)  # what the loader does per sample
        drawn.append(view(sample)["text_prompt"])
    counts = Counter(_which(p) for p in drawn)
    assert set(counts) == set(NAMES)
    assert all(abs(c - 1000) < 110 for c in counts.values()), counts  # 1/3 each, +-4 sd
    random.seed(123)
    again = view(sample)["text_prompt"]
    assert again == drawn[123]  # the same seed draws the same name and template
    evaluation = make_views({"text_prompt": {}}, lambda texts: texts, train=False)
    assert _which(evaluation(sample)["text_prompt"]) == "alpha"  # evaluation: the class's own name


def test_a_class_with_one_name_draws_exactly_as_before():
    templates = prompt_templates("unicl")
    view = make_views({"text_prompt": {}}, lambda texts: texts, train=True)
    for seed in range(50):
        random.seed(seed)
        expected = random.choice(templates).replace("{}", "alpha")
        after_expected = random.random()
        random.seed(seed)
        assert view({"class_name": "alpha", "label": 0, "key": "k"})["text_prompt"] == expected
        assert random.random() == after_expected  # no extra draw moves the other views' randomness


def test_fashion_mnist_with_synonyms_through_the_seeded_loader():
    classes = [[c, f"{c} synonym"] if i == 9 else c for i, c in enumerate(FASHION_MNIST_CLASSES)]
    source = build_source("labels", {"kind": "fashion_mnist", "split": "test", "classes": classes})
    assert source.classes == FASHION_MNIST_CLASSES  # the first names stay the class names
    sample = source[0]  # an ankle boot (label 9)
    assert sample["class_name"] == "ankle boot" and sample["synonyms"] == ("ankle boot", "ankle boot synonym")
    assert "synonyms" not in source[1]  # a single-name class carries none
    tok = get_tokenizer(77)
    items = SeededItems(ViewDataset(source, make_views({"text_prompt": {}, "target": {}}, tok, train=True)))
    boots = [items[(0, seed)] for seed in range(60)]
    texts = {tok.decode(b["text_prompt"]) for b in boots}
    assert any("synonym" in t for t in texts) and any("synonym" not in t for t in texts)
    assert len({b["target"] for b in boots}) == 1  # one class, one UniCL target, whichever name it drew
    assert torch.equal(items[(0, 5)]["text_prompt"], items[(0, 5)]["text_prompt"])  # resumable: seed decides


def test_bad_class_lists_say_what_to_do():
    with pytest.raises(ValueError, match="non-empty list of names"):
        class_names(["coat", []], "data.sources.labels.classes")
    with pytest.raises(ValueError, match="must list 10 names"):
        build_source("labels", {"kind": "fashion_mnist", "split": "test", "classes": [["a", "b"]]})
    with pytest.raises(ValueError, match="'wordnet'"):
        build_source("labels", {"kind": "fashion_mnist", "split": "test", "synonyms": "thesaurus"})


@needs_wordnet
def test_wordnet_synonyms_of_fashion_mnist_names():
    groups = with_wordnet_synonyms(FASHION_MNIST_CLASSES)
    by_name = {g[0]: g for g in groups}
    assert by_name["t-shirt"] == ["t-shirt", "jersey", "tee shirt"]
    assert by_name["sneaker"] == ["sneaker", "gym shoe", "tennis shoe"]  # the shoe, not the informer
    assert by_name["trousers"] == ["trousers", "trouser", "pant"]  # plural looked up as its singular
    assert by_name["ankle boot"] == ["ankle boot"]  # not in WordNet: one name, as before
    source = build_source("labels", {"kind": "fashion_mnist", "split": "test", "synonyms": "wordnet"})
    assert source.classes == FASHION_MNIST_CLASSES and source.synonyms == groups
