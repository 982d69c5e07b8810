"""Prompt-template sets for zero-shot classification; every result records the set it used.

Templates are plain strings with a ``{}`` placeholder (see :func:`synclip.eval.zero_shot.fill`). A set
is named (:data:`TEMPLATE_SETS`) or read from a text file, one template per line
(:func:`resolve_templates`); class names can be read the same way (:func:`read_lines`).
"""

from __future__ import annotations

from pathlib import Path

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

# Written for synclip: handwritten digits (MNIST-5k, sklearn digits). The first is CLIP's MNIST prompt
# (Radford et al. 2021, the prompt-engineering notebook).
DIGITS = [
    'a photo of the number: "{}".',
    "the digit {}",
    "a handwritten {}.",
    "a black and white picture of the number {}.",
    "the number {}",
    "{}",
]

TEMPLATE_SETS: dict[str, list[str]] = {
    "emoji": EMOJI,
    "fashion": FASHION,
    "digits": DIGITS,
    # CLIP's 80 ImageNet prompts (Radford et al. 2021), used by open_clip and CLIP_benchmark.
    "openai_imagenet": _render(zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES),
    # The 7-prompt ImageNet subset of CLIP's prompt-engineering notebook, which SLIP (Mu et al. 2021)
    # evaluates with: SLIP's templates.json "imagenet" entry == open_clip SIMPLE_IMAGENET_TEMPLATES.
    "slip_imagenet": _render(zero_shot_metadata.SIMPLE_IMAGENET_TEMPLATES),
}


def get_templates(name: str) -> list[str]:
    """A copy of the template set ``name``."""
    if name not in TEMPLATE_SETS:
        raise KeyError(f"unknown template set {name!r}; known: {', '.join(TEMPLATE_SETS)}")
    return list(TEMPLATE_SETS[name])


def read_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file, stripped; lines starting with ``#`` are comments."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise ValueError(f"{path} has no lines (blank lines and '#' comments are skipped)")
    return lines


def clip_benchmark_table(kind: str, dataset: str) -> list[str]:
    """CLIP_benchmark's English ``"classnames"`` or ``"templates"`` (``{}`` placeholder) of ``dataset``,
    e.g. imagenet1k's 1,000 class names and 80 prompts, from the ``clip-benchmark`` package."""
    import json
    from importlib import resources

    try:
        folder = resources.files("clip_benchmark") / "datasets"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "CLIP_benchmark's class names and templates need the clip-benchmark package: "
            "pip install 'synclip[benchmark]'"
        ) from None
    file = "en_classnames.json" if kind == "classnames" else "en_zeroshot_classification_templates.json"
    table = json.loads((folder / file).read_text(encoding="utf-8"))
    if dataset not in table:
        raise ValueError(f"CLIP_benchmark has no {kind} for {dataset!r}; it has: {', '.join(sorted(table))}")
    return [line.replace("{c}", "{}") for line in table[dataset]]


def resolve_templates(spec: str) -> tuple[str, list[str]]:
    """(name to record, templates) for a set name, ``clip_benchmark:<dataset>`` (that dataset's
    prompts in the clip-benchmark package, e.g. ``clip_benchmark:imagenet1k``, CLIP's 80) or a file
    of templates, one per line.

    A file's name is recorded as ``file:<absolute path>``; each of its templates must hold a ``{}``
    (or ``{c}``) placeholder.
    """
    if spec in TEMPLATE_SETS:
        return spec, get_templates(spec)
    if spec.startswith("clip_benchmark:"):  # a dataset's prompts as CLIP_benchmark ships them
        return spec, clip_benchmark_table("templates", spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(
            f"templates {spec!r} is neither a template set ({', '.join(TEMPLATE_SETS)}) nor a file"
        )
    templates = read_lines(path)
    bad = [t for t in templates if "{}" not in t and "{c}" not in t]
    if bad:
        raise ValueError(f"{path}: templates without a '{{}}' placeholder: {bad[:3]}")
    return f"file:{path.resolve()}", templates
