"""Sample sources: map-style torch Datasets that yield one dict per sample, and their registry.

Every sample carries ``"key"`` (a readable id). Image-text sources add ``"image"`` (PIL RGB) and
``"caption"``; labelled sources add ``"image"``, ``"label"`` (int) and ``"class_name"``. A sample that
cannot be used raises :class:`BadSample`, which :class:`synclip.data.views.ViewDataset` turns into a
marker so that a DataLoader worker survives it.

Each ``data.sources.<name>.kind`` of a config is registered in :data:`synclip.registry.SOURCES` with
its option defaults (:mod:`synclip.data.sources.base`); :func:`build_source` checks the kind and the
options and builds the dataset. The modules below hold the datasets and register their kinds, one
import line each: a new source kind is one new file in this folder plus one import line here.

A source that decodes image files itself may carry a ``decode_size`` attribute (None by default); the
batched augmentation path sets it so that JPEGs are draft-decoded to about that size
(:func:`synclip.data.images.load_rgb`); ``csv`` and ``image_folder`` do.
"""

from synclip.data.images import BadSample
from synclip.data.sources import arrays as arrays
from synclip.data.sources import csv_labels as csv_labels
from synclip.data.sources import csv_pairs as csv_pairs
from synclip.data.sources import emoji as emoji
from synclip.data.sources import hf_dataset as hf_dataset
from synclip.data.sources import image_folder as image_folder
from synclip.data.sources import labelled as labelled
from synclip.data.sources import webdataset as webdataset
from synclip.data.sources.arrays import ArrayImageLabel
from synclip.data.sources.base import (
    SOURCE_OPTIONS,
    build_source,
    register_source,
    resolve_source,
    source_defaults,
)
from synclip.data.sources.csv_labels import CsvImageLabel
from synclip.data.sources.csv_pairs import CsvImageText
from synclip.data.sources.hf_dataset import HFImageText
from synclip.data.sources.image_folder import IMAGE_EXTENSIONS, ImageFolder
from synclip.data.sources.labelled import fashion_mnist, mnist5k, renamed, sklearn_digits

__all__ = [
    "BadSample",
    "CsvImageText",
    "HFImageText",
    "ImageFolder",
    "ArrayImageLabel",
    "IMAGE_EXTENSIONS",
    "CsvImageLabel",
    "fashion_mnist",
    "mnist5k",
    "sklearn_digits",
    "renamed",
    "SOURCE_OPTIONS",
    "build_source",
    "register_source",
    "resolve_source",
    "source_defaults",
]
