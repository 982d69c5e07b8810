"""Run configuration: typed dataclasses filled from a recipe YAML plus dotted ``key=value`` overrides.

Unknown keys and values of the wrong type are errors that list what is valid. Objective options are
checked against the objective's constructor, view options against the view builder's defaults.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synclip.config.ranges import range_problems

RECIPE_DIR = Path(__file__).parent.parent / "recipes"


class ConfigError(ValueError):
    """A configuration mistake; the message says what is valid."""


@dataclass
class ModelConfig:
    name: str = "tiny-vit-48"  # synclip or open_clip architecture name
    pretrained: str | None = None  # open_clip-layout weights or a synclip checkpoint
    image_size: int | None = None  # override of the architecture's image size
    context_length: int | None = None  # override of the text context length
    patch_dropout: float = 0.0  # FLIP-style fraction of patch tokens dropped in training
    # FLIP's text masking: fraction of each caption's real tokens the text tower drops in training (off
    # as FLIP's code, configs/default.py model_txt.mask_ratio = 0.0; synclip.models.text_masking)
    text_mask_ratio: float = 0.0
    grad_checkpointing: bool = False  # recompute tower activations in backward (open_clip's)
    image_init: str | None = None  # image tower weights: efficientnet-lite0 or a synclip/open_clip/timm file
    lock_image: bool = False  # LiT: freeze the image tower (eval mode, no grad); see synclip.models.locking
    lock_text: bool = False  # freeze the text tower
    unlocked_groups: int = 0  # leave the last N layer groups of each locked tower trainable
    freeze_bn_stats: bool = True  # BatchNorm statistics of a locked image tower stay as loaded
    # False: no image projection, the embedding is the image tower's pooled feature and the text tower
    # projects to its width (LiT's img_head=False, big_vision configs/proj/image_text/lit_coco.py)
    image_head: bool = True


@dataclass
class DataConfig:
    # source name -> {kind: emoji|csv|image_folder|webdataset|hf_dataset|fashion_mnist|mnist5k|emoji_labels, ...};
    # objectives read the source named in their options
    sources: dict = field(default_factory=lambda: {"pairs": {"kind": "emoji", "style": "twemoji"}})
    workers: int = 2
    # image augmentation of training views: "pil" (each sample in a DataLoader worker, torchvision on PIL
    # images) or "batched" (workers decode each image once and ship uint8; crops, flips and colour
    # augmentation run on whole batches on the training device: synclip.data.batched)
    augment: str = "pil"
    # batched path: decoded images are scaled to fit a decode_size x decode_size canvas (JPEG draft
    # decoding to about that size); null: twice the model's image size (our choice)
    decode_size: int | None = None
    max_bad_fraction: float = 0.01  # stop when more than this fraction of samples is unreadable


@dataclass
class TrainConfig:
    epochs: int | float = 10  # may be a fraction (at least one step is trained)
    max_steps: int | None = None  # stop after this many steps (the schedule still spans `epochs`)
    batch_size: int = 128  # per process (and per micro-batch when accum_steps > 1)
    accum_steps: int = 1  # micro-batches per optimizer step; the contrastive batch stays whole
    lr: float = 1e-3
    weight_decay: float = 0.1
    # False: torch AdamW's decay, lr_t * weight_decay * theta per step (CLIP, SLIP, DeCLIP, open_clip).
    # True: big_vision's decoupled decay, (lr_t / lr) * weight_decay * theta, i.e. the schedule times
    # the decay, not multiplied by the base lr (big_vision/optax.py: add_decayed_weights after scale(lr))
    decoupled_weight_decay: bool = False
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = 100
    grad_clip_norm: float | None = (
        None  # global gradient-norm clip; off as in CLIP and SLIP (big_vision: 1.0)
    )
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 with loss scaling, CUDA only)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    checkpoint_every: int = 200  # steps; a checkpoint is also written at the end
    save_every: int | None = None  # epochs: also keep epoch_N.pt beside the resumable checkpoint.pt
    keep_last: int | None = None  # keep only the newest N epoch_N.pt (null: all)
    log_every: int = 10
    out_dir: str = "runs"
    name: str | None = None  # run folder name; default <recipe>-s<seed>
    resume: str | None = None  # "auto" (the run folder's last checkpoint) or a checkpoint path
    progress: bool = True
    compile: bool = False  # torch.compile the training forward
    find_unused_parameters: bool | None = None  # DDP; None: on when an objective has weight 0
    # FSDP2 instead of DDP: towers sharded per transformer block, sharded (DCP) checkpoints
    # (synclip.train.fsdp); with one process it trains unsharded but still writes sharded checkpoints
    fsdp: bool = False


@dataclass
class EvalConfig:
    at_end: bool = True  # evaluate the final model and write eval.json
    tasks: list | None = None  # None: every available task
    batch_size: int = 256
    limit: int | None = None  # cap on images per task (quick checks)
    # the data of `synclip eval`: your image folder (+ class-name file), your CSV of pairs
    # ([image column, caption column]; null: eval's defaults), a template set or file
    image_folder: str | None = None
    class_names: str | None = None
    csv: str | None = None
    csv_keys: list | None = None
    templates: str | None = None
    benchmark: str | None = None  # imagenet1k, wds/<name>, a CLIP_benchmark dataset (synclip.eval.benchmark)
    data_root: str | None = None  # where the benchmark's local copy is
    hf_dataset: str | None = None  # a local Hugging Face dataset folder (synclip.data.sources.hf_dataset)
    hf_options: dict | None = None  # its options: split, format, img_key, caption_key, label_key, classes
    every_steps: int | None = None  # also evaluate every N steps during training (metrics.jsonl, TensorBoard)
    every_epochs: int | None = None  # ... and/or at the end of every N-th epoch

    def data_options(self) -> dict:
        """The keyword arguments of :func:`synclip.eval.run.evaluate` this section sets (data, templates)."""
        names = ("image_folder", "class_names", "csv", "templates", "benchmark", "data_root", "hf_dataset")
        out = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if self.csv_keys is not None:
            out["csv_keys"] = tuple(self.csv_keys)
        if self.hf_options:
            out["hf_options"] = dict(self.hf_options)
        return out


@dataclass
class RunConfig:
    recipe: str = "clip"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    views: dict = field(default_factory=dict)  # view name -> options
    objectives: dict = field(default_factory=lambda: {"clip": {"weight": 1.0}})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # stage name -> config changes over the rest of this config, trained in order (synclip.train.stages)
    stages: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def list_recipes() -> dict[str, str]:
    """Recipe name -> one-line description, from the YAML files shipped with synclip."""
    out = {}
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        out[path.stem] = (yaml.safe_load(path.read_text()) or {}).get("description", "")
    return out


def read_recipe(path: Path) -> dict:
    """A recipe file's top-level mapping; a YAML, encoding or shape mistake is a ConfigError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"recipe file {path} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe file {path} is not valid YAML: {_yaml_problem(err)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"recipe file {path} must be a mapping of sections (model:, data:, train:, ...), "
            f"not a {type(raw).__name__}"
        )
    return raw


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line: what the YAML parser found wrong and where (1-based line and column)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def apply_override(raw: dict, item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (numbers, lists, null)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. train.lr=5e-4")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key}: {part} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {item!r}: the value is not valid YAML ({_yaml_problem(err)}); quote strings and "
            "close brackets, e.g. train.lr=5e-4 or 'eval.tasks=[knn, csv]'"
        ) from None


def build_config(raw: dict) -> RunConfig:
    """One checked :class:`RunConfig` from a raw mapping; its ``stages`` are checked by
    :func:`synclip.config.from_dict`, which also plans them."""
    cfg = _build(RunConfig, raw, "")
    _check_objectives(cfg.objectives)
    _check_views(cfg.views)
    if cfg.data.augment not in ("pil", "batched"):
        raise ConfigError(f"data.augment must be pil or batched, not {cfg.data.augment!r}")
    if cfg.train.precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be fp32, bf16 or fp16, not {cfg.train.precision!r}")
    if cfg.train.fsdp and cfg.train.precision == "fp16":
        raise ConfigError(
            "train.fsdp=true with train.precision=fp16 is not supported (the loss scaler would check only "
            "each rank's gradient shards for overflow); use train.precision=bf16"
        )
    keys = cfg.eval.csv_keys
    if keys is not None and (len(keys) not in (2, 3) or not all(isinstance(k, str) for k in keys)):
        raise ConfigError(
            f"eval.csv_keys must be [image column, caption column] or [image, caption, separator], got {keys!r}"
        )
    if cfg.eval.hf_options is not None and not isinstance(cfg.eval.hf_options, dict):
        raise ConfigError(
            f"eval.hf_options must be a mapping such as {{split: test, label_key: label}}, got {cfg.eval.hf_options!r}"
        )
    problems = range_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def run_dir_for(cfg: RunConfig) -> Path:
    """The run folder: ``train.out_dir / train.name`` (default ``<recipe>-s<seed>``)."""
    return Path(cfg.train.out_dir) / (cfg.train.name or f"{cfg.recipe}-s{cfg.train.seed}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or 'config'}; valid keys: {', '.join(names)}")
    values = {}
    for key, value in raw.items():
        hint, path = hints[key], f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, path)
        else:
            values[key] = _coerce(value, hint, path)
    return cls(**values)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{path} may not be null")
    for option in options:
        if option is type(None):
            continue
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, str):
            try:  # YAML 1.1 reads "5e-4" (no dot) as a string
                return float(value)
            except ValueError:
                continue
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, dict, list) and isinstance(value, origin):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{path} must be {names}, got {value!r}")


def _check_objectives(objectives: dict) -> None:
    from synclip.objectives import objective_options
    from synclip.registry import OBJECTIVES

    if not objectives:
        raise ConfigError("objectives: a recipe needs at least one objective")
    for name, options in objectives.items():
        options = options or {}
        if not isinstance(options, dict):
            raise ConfigError(f"objectives.{name} must be a mapping of options")
        kind = options.get("type", name)
        if kind not in OBJECTIVES:
            raise ConfigError(
                f"objectives.{name}: unknown objective {kind!r}; known: {', '.join(OBJECTIVES.names())}"
            )
        valid = set(objective_options(kind)) | {"weight", "type", "start_fraction"}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ConfigError(
                f"objectives.{name}: unknown option(s) {unknown}; valid: {', '.join(sorted(valid))}"
            )
        objectives[name] = options


def _check_views(views: dict) -> None:
    from synclip.data.views import resolve_view

    for name, options in views.items():
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"views.{name} must be a mapping of view options (or null), got {options!r}")
        try:
            resolve_view(name, options)
        except ValueError as err:
            raise ConfigError(f"views.{name}: {err}") from None
