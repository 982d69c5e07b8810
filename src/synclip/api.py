"""``synclip.load``: a trained model from a checkpoint alone, ready to embed images and text."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from synclip.data.tokenizer import get_tokenizer
from synclip.data.views import make_views, view_defaults
from synclip.io.checkpoint import FORMAT, CheckpointError, read_checkpoint
from synclip.models import TwoTower, create_model, load_state
from synclip.recipe import build_heads, saved_heads


class ImagePreprocess:
    """PIL image -> normalised (3, H, W) tensor, as the ``image`` view builds it at evaluation."""

    def __init__(self, options: dict, tokenizer):
        self.options = options
        self._view = make_views({"image": options}, tokenizer, train=False)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self._view({"image": image.convert("RGB"), "caption": "", "key": ""})["image"]


def load(path: str | Path, model_name: str | None = None, device: str | torch.device = "cpu") -> TwoTower:
    """Load a synclip checkpoint (or open_clip-layout weights with ``model_name``) for inference.

    The returned model is in eval mode and carries ``tokenizer`` (list[str] -> LongTensor),
    ``preprocess`` (PIL -> tensor), ``logit_scale_value``, ``exported`` (the tensors the objectives
    keep beside the towers: ``logit_scale``, ``logit_bias``, ...), ``config`` (the run's config) and
    ``heads``: ``{objective name: module}``, the inference heads its objectives saved (a ``classify``
    objective's :class:`~synclip.objectives.classify.ClassifierHead`, say), rebuilt through the
    objective registry; empty for recipes without one. Files written by ``synclip export`` carry them
    too.
    """
    state = read_checkpoint(path)
    config: dict = {}
    if state.get("format") == FORMAT:
        config = state["config"]
        m = config["model"]
        model = create_model(
            state["model_name"], image_size=m["image_size"], context_length=m["context_length"]
        )
        weights = state["model"]
    else:
        if model_name is None:
            raise CheckpointError(
                f"{path} is not a synclip checkpoint; pass model_name= for open_clip weights"
            )
        model = create_model(model_name)
        weights = state.get("state_dict", state)
    # what the objectives exported beside the towers (logit_scale, logit_bias, ...) is not tower weights
    beside = set(state.get("exported", ())) | {"logit_scale", "logit_bias"}
    exported = {k: v for k, v in weights.items() if k in beside}
    weights = {k: v for k, v in weights.items() if k not in beside}
    try:
        load_state(model, weights, where=str(path))
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    image_options = dict(view_defaults("image"))
    image_options.update((config.get("views") or {}).get("image") or {})
    image_options["size"] = model.image_size
    model.tokenizer = get_tokenizer(model.context_length)
    model.preprocess = ImagePreprocess(image_options, model.tokenizer)
    model.logit_scale_value = float(torch.as_tensor(exported.get("logit_scale", math.log(1 / 0.07))).exp())
    model.exported = exported
    model.config = config
    model.heads = {name: head.to(device) for name, head in build_heads(saved_heads(state)).items()}
    return model.to(device).eval()
