"""The ``webdataset`` source: tar shards streamed by :class:`synclip.data.shards.ShardStream`.

It has no map-style dataset: :func:`synclip.train.data.build_loaders` builds its stream from the
options resolved here (:func:`synclip.data.sources.resolve_source`), and :func:`build_source` refuses it.
"""

from __future__ import annotations

from synclip.data.sources.base import register_source


@register_source(
    "webdataset", urls=None, num_samples=None, resampled=False, shuffle_buffer=256, batch_size=None
)
def build_webdataset_source(name: str, opts: dict):
    """Refuse: a webdataset source streams."""
    raise ValueError(f"data.sources.{name}: a webdataset source streams; use build_loaders")
