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
from synclip.objectives.caption import published_coca_head
from synclip.recipe import build_heads, saved_heads


class ImagePreprocess:
    """PIL image -> normalised (3, H, W) tensor, as the ``image`` view builds it at evaluation."""

    def __init__(self, options: dict, tokenizer):
        self.options = options
        self._view = make_views({"image": options}, tokenizer, train=False)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self._view({"image": image.convert("RGB"), "caption": "", "key": ""})["image"]


def load(path: str | Path, model_name: str | None = None, device: str | torch.device = "cpu") -> TwoTower:
    """Load a synclip checkpoint, published weights (``open_clip:<arch>:<tag or file>``, see
    :mod:`synclip.models.published`: OpenAI's TorchScript archives too) or open_clip-layout weights
    with ``model_name``, for inference.

    The returned model is in eval mode and carries ``tokenizer`` (list[str] -> LongTensor),
    ``preprocess`` (PIL -> tensor), ``logit_scale_value``, ``exported`` (the tensors the objectives
    keep beside the towers: ``logit_scale``, ``logit_bias``, ...), ``config`` (the run's config) and
    ``heads``: ``{objective name: module}``, the inference heads its objectives saved (a ``classify``
    objective's :class:`~synclip.objectives.classify.ClassifierHead`, say), rebuilt through the
    objective registry; empty for recipes without one. Files written by ``synclip export`` carry them
    too. Published CoCa weights (``open_clip:coca_ViT-B-32:<tag>``) get their decoder as
    ``heads["caption"]``, so ``model.generate`` captions with it.
    """
    from synclip.models.published import SYNTAX, is_published, read_published

    config: dict = {}
    if is_published(path):  # open_clip:<arch>:<tag or file>: towers, logit_scale / logit_bias, normalisation
        published = read_published(str(path))
        model = create_model(published.arch)
        load_state(model, published.state, where=str(path))
        coca = published_coca_head(model, published.exported)  # a CoCa's decoder: model.heads["caption"]
        return _serve(
            model,
            published.exported,
            {"mean": published.mean, "std": published.std},
            {},
            {"caption": coca} if coca else {},
            device,
            published.path,
        )
    state = read_checkpoint(path)
    if state.get("format") == FORMAT:
        config = state["config"]
        m = config["model"]
        model = create_model(
            state["model_name"],
            image_size=m["image_size"],
            context_length=m["context_length"],
            image_head=m.get("image_head", True),
        )
        weights = state["model"]
    else:
        if model_name is None:
            raise CheckpointError(
                f"{path} is not a synclip checkpoint; name open_clip weights as {SYNTAX.split(', e.g.')[0]} "
                f"(open_clip:<architecture>:{path}), or pass model_name="
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
    image = (config.get("views") or {}).get("image") or {}
    return _serve(model, exported, image, config, saved_heads(state), device, Path(path))


def _serve(model, exported: dict, image: dict, config: dict, heads: dict, device, weights: Path) -> TwoTower:
    """Attach what inference needs (tokenizer, preprocess, exported tensors, heads) to ``model``."""
    image_options = dict(view_defaults("image"))
    image_options.update(image)
    image_options["size"] = model.image_size
    model.tokenizer = get_tokenizer(model.context_length, model.tokenizer_file)
    model.preprocess = ImagePreprocess(image_options, model.tokenizer)
    model.logit_scale_value = float(torch.as_tensor(exported.get("logit_scale", math.log(1 / 0.07))).exp())
    model.exported = exported
    model.config = config
    model.heads = {name: head.to(device) for name, head in build_heads(heads).items()}
    model.weights_file = weights  # the file read (for published weights: the resolved one)
    return model.to(device).eval()
