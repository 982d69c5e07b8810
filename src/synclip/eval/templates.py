"""Prompt template sets for zero-shot classification; every result records the set it used."""

from __future__ import annotations

from open_clip import zero_shot_metadata

# Short prompts in the register of the emoji names the models are trained on (written for synclip).
EMOJI = ["{}", "{} emoji", "an emoji of {}.", "an emoji of a {}.", "a {} icon.", "a drawing of a {}."]

# Generic photo prompts for transfer to real images (Fashion-MNIST, digits).
PHOTO = [
    "{}",
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a {}.",
]


def _from_open_clip(templates) -> list[str]:
    """open_clip stores templates as callables of the class name; render them with a placeholder."""
    return [t("{}") if callable(t) else t for t in templates]


TEMPLATE_SETS: dict[str, list[str]] = {
    "emoji": EMOJI,
    "photo": PHOTO,
    # CLIP's 80 ImageNet prompts (Radford et al. 2021), as open_clip and CLIP_benchmark use them
    "openai_imagenet": _from_open_clip(zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES),
    # the 7-prompt ImageNet ensemble used by SLIP's zero-shot evaluation
    "slip_imagenet7": [
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ],
}


def get_templates(name: str) -> list[str]:
    if name not in TEMPLATE_SETS:
        raise KeyError(f"unknown template set {name!r}; known: {', '.join(TEMPLATE_SETS)}")
    return list(TEMPLATE_SETS[name])
