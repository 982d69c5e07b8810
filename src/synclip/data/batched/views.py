"""The batched path of the image views (``image``, ``image_ssl``, the multi-crop ``image_global`` and
``image_local``): parameters in the worker, pixels on the device.

With ``data.augment=batched`` a DataLoader worker decodes each sample's image once into a uint8
canvas (:mod:`.canvas`) and, for every image view, draws only that view's random parameters from the
sample's seeded RNG (:mod:`.params`). The collate stacks canvases and parameters; on the training
device :class:`BatchedAugment` crops, colours and normalises all views of the whole batch at once
(:mod:`.ops`), giving the tensors the PIL path gives: ``image`` (B, 3, S, S) and the N-crop views
(B, N, 3, S, S), float32, normalised. The views take the same options on both paths (and are
checked by the same builders). Differences, our choice: the crop is resampled by ``roi_align``
(area-averaged bilinear) whatever ``interpolation`` says, and colour steps work on floats instead of
re-quantising to uint8 after each step. Views without a batched form keep running in the worker.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torchvision import transforms

from synclip.data.batched import ops
from synclip.data.batched.canvas import to_canvas
from synclip.data.batched.params import coin, crop_box, jitter_params
from synclip.data.views import PIXELS, Views, make_views, resolve_view, sample_field
from synclip.data.views.image_ssl import SOLARIZE_THRESHOLD, blur_kernel, single_thread
from synclip.registry import VIEWS

BLUR_SIGMA = (0.1, 2.0)  # SimCLR's range, as the PIL path's GaussianBlur


class CropView:
    """``image``: one random resized crop per sample, normalised (no flip, as the PIL view)."""

    per_sample_axis = False  # (B, 3, S, S); the N crops of image_ssl keep their axis: (B, N, 3, S, S)

    def __init__(self, cfg: dict[str, Any]):
        self.size, self.num = int(cfg["size"]), 1
        self.scale = tuple(float(v) for v in cfg["scale"])
        self.ratio = tuple(float(v) for v in cfg.get("ratio", (3 / 4, 4 / 3)))  # torchvision's default
        self.mean, self.std = tuple(map(float, cfg["mean"])), tuple(map(float, cfg["std"]))

    def draw(self, height: int, width: int) -> dict[str, torch.Tensor]:
        """This sample's parameters (worker, seeded global RNG): ``box`` (N, 4) in canvas pixels."""
        boxes = [crop_box(height, width, self.scale, self.ratio) for _ in range(self.num)]
        return {"box": torch.tensor(boxes)}  # (N, 4)

    def colour(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return x

    def apply(self, pixels: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """``pixels`` (B, 3, C, C) float in [0, 1] on the device; CPU ``params`` of :meth:`draw`, stacked.

        Returns (B, 3, S, S) for one crop per sample, else (B, N, 3, S, S).
        """
        b = pixels.shape[0]
        x = ops.resized_crops(pixels, params["box"], self.size)  # (B * N, 3, S, S)
        flat = {k: v.reshape(b * self.num, *v.shape[2:]) for k, v in params.items()}  # (B * N, ...)
        x = ops.normalise(self.colour(x, flat), self.mean, self.std)
        return x.reshape(b, self.num, *x.shape[1:]) if self.per_sample_axis else x


def per_crop(value: Any, num: int) -> list[float]:
    """A probability per crop: one value for all, or a list cycled over the crops (the multi-crop views)."""
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    return [values[i % len(values)] for i in range(num)]


class SslView(CropView):
    """``image_ssl`` (SimCLR) and the multi-crop ``image_global`` / ``image_local`` (DINO): N crops per
    sample with colour jitter, greyscale, blur, solarise and flip; blur and solarise probabilities may
    differ per crop (DINO's asymmetric global pair)."""

    per_sample_axis = True

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        self.num = int(cfg["num"])
        self.jitter = tuple(float(v) for v in cfg["jitter"])
        self.jitter_p, self.grey_p = float(cfg["jitter_p"]), float(cfg["grey_p"])
        self.blur_p, self.solarize_p = (
            per_crop(cfg["blur_p"], self.num),
            per_crop(cfg["solarize_p"], self.num),
        )
        self.kernel = blur_kernel(self.size)

    def draw(self, height: int, width: int) -> dict[str, torch.Tensor]:
        """Per crop, in the PIL pipeline's order: box, jitter (apply, order, factors), grey, blur
        (apply, sigma), solarise, flip."""
        rows: dict[str, list] = {
            k: [] for k in ("box", "jitter", "order", "factors", "grey", "blur", "sigma")
        }
        rows |= {"solarise": [], "flip": []}
        for i in range(self.num):
            rows["box"].append(crop_box(height, width, self.scale, self.ratio))
            rows["jitter"].append(coin(self.jitter_p))
            order, factors = jitter_params(self.jitter)
            rows["order"].append(order)
            rows["factors"].append(factors)
            rows["grey"].append(coin(self.grey_p))
            rows["blur"].append(coin(self.blur_p[i]))
            rows["sigma"].append(transforms.GaussianBlur.get_params(*BLUR_SIGMA))
            rows["solarise"].append(coin(self.solarize_p[i]))
            rows["flip"].append(coin(0.5))
        return {k: torch.tensor(v) for k, v in rows.items()}  # box (N, 4), order / factors (N, 4), rest (N,)

    def colour(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        x = ops.colour_jitter(x, p["jitter"], p["factors"], p["order"])
        x = ops.grey(x, p["grey"])
        x = ops.blur(x, p["blur"], p["sigma"], self.kernel)
        x = ops.solarise(x, p["solarise"], SOLARIZE_THRESHOLD / 255)
        return ops.hflip(x, p["flip"])


BATCHED_KINDS = {"image": CropView, "image_ssl": SslView, "image_global": SslView, "image_local": SslView}


class DecodeOnce:
    """Worker side: ``sample -> item``, the image decoded once into a canvas under ``PIXELS``, each batched
    view's parameters under its name, and every other view as the PIL path builds it. Picklable."""

    def __init__(self, others: Views | None, batched: dict[str, CropView], side: int):
        self.others, self.batched, self.side = others, batched, side

    def __call__(self, sample: dict) -> dict[str, Any]:
        out = self.others(sample) if self.others is not None else {}
        canvas, (height, width) = to_canvas(
            sample_field(sample, "image", next(iter(self.batched))), self.side
        )
        for name, view in self.batched.items():
            out[name] = view.draw(height, width)
        out[PIXELS] = canvas  # (3, C, C) uint8
        return out

    def __repr__(self) -> str:
        return f"DecodeOnce(batched={list(self.batched)}, others={self.others}, side={self.side})"


class BatchedAugment:
    """Device side: a collated source batch's canvases and parameters -> the views' finished tensors."""

    def __init__(self, batched: dict[str, CropView]):
        self.batched = batched

    def __call__(self, batch: dict, device: torch.device) -> dict:
        """Replace each batched view's parameters in ``batch`` (a CPU batch from the collate) with its
        images on ``device``; the canvases are dropped. A batch without samples is returned as it is."""
        if PIXELS not in batch:
            return batch
        batch = dict(batch)
        # on the CPU: one thread; these are many small ops, for which intra-op threads cost more than
        # they save (a 64-sample slip batch of 32 px views: 45 ms of CPU on 1 thread, 665 ms on 2)
        with single_thread() if device.type == "cpu" else contextlib.nullcontext():
            canvas = batch.pop(PIXELS).to(device, non_blocking=True)  # (B, 3, C, C) uint8
            pixels = canvas.float().div_(255)  # (B, 3, C, C) in [0, 1]
            for name, view in self.batched.items():
                batch[name] = view.apply(pixels, batch[name])
        return batch


def batched_views(cfgs: dict[str, dict], tokenizer: Any, side: int) -> tuple[Any, BatchedAugment | None]:
    """Training views of ``cfgs`` (output name -> options) on the batched path:
    ``(worker views, device augmenter)``; ``(PIL views, None)`` when no view has a batched form."""
    batched, others = {}, {}
    for name, cfg in cfgs.items():
        kind, options = resolve_view(name, cfg)
        if kind in BATCHED_KINDS:
            VIEWS.get(kind)(options, tokenizer, True)  # the PIL builder checks the options
            batched[name] = BATCHED_KINDS[kind](options)
        else:
            others[name] = cfg
    if not batched:
        return make_views(cfgs, tokenizer, train=True), None
    rest = make_views(others, tokenizer, train=True) if others else None
    return DecodeOnce(rest, batched, side), BatchedAugment(batched)
