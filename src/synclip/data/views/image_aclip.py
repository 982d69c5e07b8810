"""The ``image_aclip`` view: A-CLIP's two online crops and the larger teacher crop that holds them.

Yang et al., Attentive Mask CLIP, ICCV 2023, https://arxiv.org/abs/2212.08653; code microsoft/A-CLIP
``datasets.py`` (``GetThreeRandomResizedCrop``, ``ImageCaptionDatasetACLIP``) and ``main.py``
(``train_transform``):

- two online crops, each a random resized crop of scale (0.5, 1.0) (aspect ratio 3/4 to 4/3), then
  colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, greyscale p 0.2, Gaussian blur sigma in [0.1, 2]
  with p 0.1 and solarisation p 0.2 (no flip: the crops must stay aligned with the teacher's crop);
- one teacher (EMA) crop: the smallest box holding both online crops, grown towards the image edges
  by a random amount on every side, resized to the same size, without colour augmentation.

The view is a tensor (3, 3, size, size): online crop 1, online crop 2, teacher crop; it also gives
``<name>_boxes`` (2, 4): each online crop's ``(top, left, height, width)`` as fractions of the
teacher crop, which the objective uses to carry the teacher's attention onto the online crops.
The official code takes the union's left edge as ``min(left1, height2)`` (a typo); this uses
``min(left1, left2)``. Blur and solarisation act on uint8 images: solarise above 128 (PIL's default,
which the official ``Solarize`` calls). Evaluation gives three centre crops and full boxes.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import RandomResizedCrop, v2
from torchvision.transforms.v2 import functional as TF

from synclip.data.views.base import WithExtras, register_view, sample_field
from synclip.data.views.image import INTERPOLATIONS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, _pair
from synclip.data.views.image_ssl import single_thread


def _colour(cfg: dict[str, Any], size: int) -> v2.Compose:
    kernel = 2 * max(1, round(0.05 * size)) + 1  # about 10% of the side, odd, as the image_ssl view
    return v2.Compose(
        [
            v2.RandomApply([v2.ColorJitter(*map(float, cfg["jitter"]))], p=float(cfg["jitter_p"])),
            v2.RandomGrayscale(p=float(cfg["grey_p"])),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=float(cfg["blur_p"])),
            v2.RandomSolarize(threshold=128, p=float(cfg["solarize_p"])),
        ]
    )


def teacher_box(a: tuple[int, ...], b: tuple[int, ...], height: int, width: int) -> tuple[int, int, int, int]:
    """A random box (top, left, h, w) holding boxes ``a`` and ``b`` (each (top, left, h, w)) inside an
    image of ``height`` x ``width``: the union, its top-left corner moved up-left and its size grown by
    uniform random amounts within the image (A-CLIP's zoom-out crop), from torch's seeded RNG."""
    top, left = min(a[0], b[0]), min(a[1], b[1])
    bottom, right = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    top = int(torch.randint(0, top + 1, ()).item())
    left = int(torch.randint(0, left + 1, ()).item())
    h = int(torch.randint(bottom - top, height - top + 1, ()).item())
    w = int(torch.randint(right - left, width - left + 1, ()).item())
    return top, left, h, w


def _relative(box: tuple[int, ...], outer: tuple[int, ...]) -> list[float]:
    return [
        (box[0] - outer[0]) / outer[2],
        (box[1] - outer[1]) / outer[3],
        box[2] / outer[2],
        box[3] / outer[3],
    ]


class AclipCrops:
    """sample -> ``WithExtras((3, 3, size, size), {"boxes": (2, 4)})``. Picklable."""

    def __init__(self, cfg: dict[str, Any], train: bool):
        self.size = int(cfg["size"])
        if self.size < 1:
            raise ValueError(f"image_aclip view size must be positive, got {self.size}")
        if cfg["interpolation"] not in INTERPOLATIONS:
            raise ValueError(f"image_aclip view interpolation must be one of {sorted(INTERPOLATIONS)}")
        self.mode = INTERPOLATIONS[cfg["interpolation"]]
        self.scale, self.ratio = _pair(cfg["scale"], "scale"), _pair(cfg["ratio"], "ratio")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"image_aclip view scale must lie in (0, 1], got {cfg['scale']}")
        self.train = train
        self.colour = _colour(cfg, self.size)
        self.finish = v2.Compose(
            [
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean=list(map(float, cfg["mean"])), std=list(map(float, cfg["std"]))),
            ]
        )

    def _crop(self, image: torch.Tensor, box: tuple[int, ...]) -> torch.Tensor:
        return TF.resized_crop(image, *box, [self.size, self.size], interpolation=self.mode, antialias=True)

    def __call__(self, sample: dict) -> WithExtras:
        image = TF.to_image(sample_field(sample, "image", "image_aclip"))  # uint8 (3, H, W)
        height, width = image.shape[-2:]
        with single_thread():
            if not self.train:
                centre = self.finish(TF.center_crop(TF.resize(image, self.size, antialias=True), self.size))
                crops = torch.stack([centre.as_subclass(torch.Tensor)] * 3)  # (3, 3, size, size)
                return WithExtras(crops, {"boxes": torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2)})
            a = tuple(RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio)))
            b = tuple(RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio)))
            outer = teacher_box(a, b, height, width)
            online = [self.finish(self.colour(self._crop(image, box))) for box in (a, b)]
            teacher = self.finish(self._crop(image, outer))
        crops = torch.stack([c.as_subclass(torch.Tensor) for c in (*online, teacher)])  # (3, 3, size, size)
        boxes = torch.tensor([_relative(a, outer), _relative(b, outer)], dtype=torch.float32)  # (2, 4)
        return WithExtras(crops, {"boxes": boxes})


@register_view(
    "image_aclip",
    tower="image",
    size=48,
    scale=(0.5, 1.0),
    ratio=(3 / 4, 4 / 3),
    jitter=(0.4, 0.4, 0.2, 0.1),
    jitter_p=0.8,
    grey_p=0.2,
    blur_p=0.1,
    solarize_p=0.2,
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
    interpolation="bilinear",  # torchvision's RandomResizedCrop default, which A-CLIP uses
)
def build_image_aclip_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the A-CLIP three-crop view; ``tokenizer`` is unused."""
    return AclipCrops(cfg, train)
