"""Views: named functions that turn one source sample into one model input.

The registry (:func:`register_view`, :func:`resolve_view`, :func:`make_views`, ...) lives in
:mod:`synclip.data.views.base`; each builder lives in a module named after what it holds, imported
below, one line each. A new view is one new file in this folder plus one import line here.

A views config maps an output name to options. The output name is also the view kind unless the
options carry ``kind``: ``{"image": {"size": 64}, "image_big": {"kind": "image", "size": 128}}``.
"""

from synclip.data.views import entity as entity
from synclip.data.views import image as image
from synclip.data.views import image_aclip as image_aclip
from synclip.data.views import image_ssl as image_ssl
from synclip.data.views import label as label
from synclip.data.views import mask as mask
from synclip.data.views import multi_crop as multi_crop
from synclip.data.views import prompt as prompt
from synclip.data.views import text as text
from synclip.data.views import text_eda as text_eda
from synclip.data.views import text_mlm as text_mlm
from synclip.data.views import uniform as uniform
from synclip.data.views.base import (
    PIXELS,
    RESERVED_NAMES,
    VIEW_OPTIONS,
    VIEW_TOWERS,
    ViewDataset,
    Views,
    WithExtras,
    make_views,
    register_view,
    resolve_view,
    sample_field,
    view_defaults,
    view_tower,
    view_tower_of,
)

__all__ = [
    "PIXELS",
    "RESERVED_NAMES",
    "VIEW_OPTIONS",
    "VIEW_TOWERS",
    "ViewDataset",
    "Views",
    "WithExtras",
    "make_views",
    "register_view",
    "resolve_view",
    "sample_field",
    "view_defaults",
    "view_tower",
    "view_tower_of",
]
