"""View registry: named functions that turn one source sample into one model input.

A view *builder* is registered in :data:`synclip.registry.VIEWS` with the tower it feeds and its
option defaults::

    @register_view("image", tower="image", size=48, ...)
    def build(cfg: dict, tokenizer, train: bool) -> Callable[[dict], Any]: ...

``cfg`` arrives complete (defaults merged, unknown names rejected). A view may return
:class:`WithExtras` when one random draw makes several outputs that must agree (crops and their
boxes): the extras land beside the view's value as ``<name>_<key>``. ``tower`` is ``"image"`` for
image-like views, ``"text"`` for token views and ``None`` for the rest (labels, masks); it is not an
option. Builders live in the modules of :mod:`synclip.data.views`, one per kind or family, named after
what they hold; a new view (say ``image_ssl`` with N crops) is one new file there plus one import line
in ``synclip/data/views/__init__.py``. Builders should return picklable callables (module-level
functions, ``functools.partial`` or small classes) so spawn-based DataLoader workers work.

A views config maps an output name to options. The output name is also the view kind unless the
options carry ``kind``: ``{"image": {"size": 64}, "image_big": {"kind": "image", "size": 128}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from torch.utils.data import Dataset

from synclip.data.images import BadSample
from synclip.registry import VIEWS

VIEW_OPTIONS: dict[str, dict[str, Any]] = {}
VIEW_TOWERS: dict[str, str | None] = {}
TOWERS = ("image", "text", None)
PIXELS = "__pixels__"  # the decoded uint8 image of a sample on the batched augmentation path
RESERVED_NAMES = ("key", "__bad__", PIXELS)


def register_view(name: str, *, tower: str | None = None, **defaults: Any) -> Callable:
    """Decorator: register a view builder under ``name``, feeding ``tower``, with its option defaults."""
    if tower not in TOWERS:
        raise ValueError(f"view {name!r}: tower must be one of {TOWERS}, got {tower!r}")

    def add(build: Callable) -> Callable:
        VIEWS.register(name)(build)
        VIEW_OPTIONS[name] = dict(defaults)
        VIEW_TOWERS[name] = tower
        return build

    return add


def view_defaults(kind: str) -> dict[str, Any]:
    """A copy of the default options of view ``kind`` (KeyError listing known kinds if unknown)."""
    VIEWS.get(kind)
    return dict(VIEW_OPTIONS[kind])


def view_tower(kind: str) -> str | None:
    """The tower view ``kind`` feeds: ``"image"``, ``"text"`` or None (KeyError if unknown)."""
    VIEWS.get(kind)
    return VIEW_TOWERS[kind]


def view_tower_of(name: str, views_cfg: Mapping[str, Any] | None) -> str | None:
    """The tower the view called ``name`` feeds, its kind read from a run's ``views`` config."""
    cfg = (views_cfg or {}).get(name) or {}
    return view_tower(cfg.get("kind", name))


def resolve_view(name: str, cfg: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Return ``(kind, complete options)`` for the view called ``name``; ValueError on unknown options."""
    cfg = dict(cfg or {})
    kind = cfg.pop("kind", name)
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} cannot name a view: it is reserved for the sample id / bad marker")
    if kind not in VIEWS:
        raise ValueError(
            f"unknown view {kind!r} (for output {name!r}); known views: {', '.join(VIEWS.names())}"
        )
    options = view_defaults(kind)
    unknown = sorted(set(cfg) - set(options))
    if unknown:
        valid = ", ".join(sorted(options)) or "none"
        raise ValueError(
            f"unknown option(s) {unknown} for view {kind!r}; valid options: {valid} (and 'kind')"
        )
    options.update(cfg)
    return kind, options


class WithExtras(NamedTuple):
    """What a view returns when one random draw makes several outputs that must agree (A-CLIP's crops
    and their boxes): ``value`` is the view's output under its own name, each entry of ``extras`` an
    output named ``<view name>_<key>`` beside it in the batch."""

    value: Any
    extras: dict[str, Any]


class Views:
    """Applies every configured view to a sample: ``sample -> {output name: value}``. Picklable.

    A view that returns :class:`WithExtras` adds its extra outputs as ``<name>_<key>``."""

    def __init__(self, fns: dict[str, Callable[[dict], Any]]):
        self.fns = fns

    def __call__(self, sample: dict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, fn in self.fns.items():
            value = fn(sample)
            if isinstance(value, WithExtras):
                out.update({f"{name}_{key}": extra for key, extra in value.extras.items()})
                value = value.value
            out[name] = value
        return out

    def __repr__(self) -> str:
        return f"Views({', '.join(self.fns)})"


def make_views(cfgs: Mapping[str, Mapping[str, Any] | None], tokenizer: Any, train: bool) -> Views:
    """Build every view of ``cfgs`` (output name -> options) for training or evaluation."""
    if not cfgs:
        raise ValueError(f"no views configured; known views: {', '.join(VIEWS.names())}")
    fns = {}
    for name, cfg in cfgs.items():
        kind, options = resolve_view(name, cfg)
        fns[name] = VIEWS.get(kind)(options, tokenizer, train)
    return Views(fns)


class ViewDataset(Dataset):
    """A source seen through views: items are ``{view name: value, "key": id}``.

    A :class:`BadSample` becomes ``{"__bad__": reason, "key": id}`` instead of an exception, so one
    broken file neither kills a DataLoader worker nor the run; :func:`synclip.data.collate.collate`
    drops and counts such items.
    """

    def __init__(self, source: Dataset, views: Callable[[dict], dict]):
        self.source = source
        self.views = views

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        try:
            sample = self.source[index]
            return {**self.views(sample), "key": sample["key"]}
        except BadSample as bad:
            return {"__bad__": bad.reason, "key": bad.key}


def sample_field(sample: dict, field: str, view: str) -> Any:
    """``sample[field]`` with an error that names the view and the fields the source does provide."""
    try:
        return sample[field]
    except KeyError:
        raise KeyError(
            f"view {view!r} needs the sample field {field!r}, but this source gives {sorted(sample)}"
        ) from None
