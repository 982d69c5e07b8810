"""Named prompt-template sets for zero-shot classification; every result records the set it used.

Templates are plain strings with a ``{}`` placeholder (see :func:`synclip.eval.zero_shot.fill`).
"""

from __future__ import annotations

from open_clip import zero_shot_metadata


def _render(templates) -> list[str]:
    """open_clip stores templates as ``lambda c: f"...{c}..."``; call them with ``"{}"``."""
    return [t("{}") if callable(t) else str(t) for t in templates]


# Written for synclip: the register of the CLDR emoji names the models are trained on.
EMOJI = [
    "{}",
    "{} emoji",
    "an emoji of {}.",
    "an emoji of a {}.",
    "an icon of a {}.",
    "a drawing of a {}.",
]

# Written for synclip: Fashion-MNIST transfer, photos of clothing (28 px, grey) described both as
# photos (CLIP's register) and as emoji (the training captions' register).
FASHION = [
    "{}",
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a picture of a {}.",
    "a {} emoji",
]

TEMPLATE_SETS: dict[str, list[str]] = {
    "emoji": EMOJI,
    "fashion": FASHION,
    # CLIP's 80 ImageNet prompts (Radford et al. 2021), used by open_clip and CLIP_benchmark.
    "openai_imagenet": _render(zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES),
    # The 7-prompt ImageNet subset of CLIP's prompt-engineering notebook, which SLIP (Mu et al. 2021)
    # evaluates with: SLIP's templates.json "imagenet" entry == open_clip SIMPLE_IMAGENET_TEMPLATES.
    "slip_imagenet7": _render(zero_shot_metadata.SIMPLE_IMAGENET_TEMPLATES),
}


def get_templates(name: str) -> list[str]:
    """A copy of the template set ``name``."""
    if name not in TEMPLATE_SETS:
        raise KeyError(f"unknown template set {name!r}; known: {', '.join(TEMPLATE_SETS)}")
    return list(TEMPLATE_SETS[name])
