"""Data: the emoji corpus, sample sources, real labelled sets, the tokenizer, views and batching.

Sources (``synclip.data.sources``) and views (``synclip.data.views``) are packages with one registry
each: a new source kind or view is one new module there plus one import line in its ``__init__``.
"""

from synclip.data.cache import cache_dir
from synclip.data.collate import collate
from synclip.data.emoji import build_emoji_corpus
from synclip.data.sources import (
    ArrayImageLabel,
    BadSample,
    CsvImageText,
    ImageFolder,
    build_source,
    fashion_mnist,
    mnist5k,
    sklearn_digits,
)
from synclip.data.tokenizer import ClipTokenizer, get_tokenizer
from synclip.data.views import (
    VIEW_OPTIONS,
    ViewDataset,
    Views,
    make_views,
    register_view,
    resolve_view,
    view_defaults,
    view_tower,
    view_tower_of,
)

__all__ = [
    "cache_dir",
    "build_emoji_corpus",
    "BadSample",
    "CsvImageText",
    "ImageFolder",
    "ArrayImageLabel",
    "build_source",
    "fashion_mnist",
    "mnist5k",
    "sklearn_digits",
    "ClipTokenizer",
    "get_tokenizer",
    "VIEW_OPTIONS",
    "Views",
    "ViewDataset",
    "make_views",
    "register_view",
    "resolve_view",
    "view_defaults",
    "view_tower",
    "view_tower_of",
    "collate",
]
