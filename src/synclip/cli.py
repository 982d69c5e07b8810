"""The ``synclip`` command: train, eval, compare, export, caption, data, recipes, models, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synclip", description=__doc__)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train", help="train a recipe: synclip train clip train.epochs=5 model.name=micro-vit-32"
    )
    p.add_argument("recipe", help="a recipe name (see `synclip recipes`) or a YAML file")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.lr=5e-4")
    p.add_argument("--resume", action="store_true", help="continue the run folder's last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    p = sub.add_parser("eval", help="evaluate a checkpoint on the built-in tasks and write eval.json")
    p.add_argument(
        "checkpoint",
        help="a synclip checkpoint or export, or published weights open_clip:ARCH:TAG_OR_FILE "
        "(open_clip:ViT-B-32:laion2b_s34b_b79k, open_clip:ViT-B-32:ViT-B-32.pt)",
    )
    p.add_argument(
        "--tasks",
        nargs="*",
        default=None,
        help="task names (default: the emoji tasks, fashion_mnist and classifier; on request: "
        "linear_probe, knn, finetune, mnist5k, digits)",
    )
    p.add_argument("--out", default=None, help="eval.json path (default: beside the checkpoint)")
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, default=None, help="cap the images per task")
    add_eval_data_arguments(p)
    p.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw zero-shot confusion matrices and retrieval grids into plots/ beside eval.json",
    )

    p = sub.add_parser(
        "compare", help="train recipes on equal terms, evaluate all, write a table, JSON and a bar chart"
    )
    p.add_argument("entries", nargs="*", help="recipes, or LABEL=RECIPE to name a row (slip_pd50=slip)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every recipe")
    p.add_argument("--out", default="reports/compare", help="report folder (runs go in OUT/runs)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every recipe")
    p.add_argument(
        "--set-for",
        nargs="+",
        action="append",
        default=[],
        metavar="LABEL KEY=VALUE",
        help="overrides for one row, e.g. --set-for slip_pd50 objectives.simclr.patch_dropout=0.5",
    )
    p.add_argument("--tasks", nargs="*", default=None, help="eval task names (default: all available)")
    p.add_argument("--limit", type=int, default=None, help="cap the images per eval task")
    add_eval_data_arguments(p)
    p.add_argument(
        "--checkpoints",
        nargs="*",
        default=[],
        help="also compare these existing checkpoints or published weights (open_clip:ARCH:TAG_OR_FILE)",
    )

    p = sub.add_parser("export", help="write a checkpoint's model as open_clip-loadable weights")
    p.add_argument("checkpoint")
    p.add_argument("out")

    p = sub.add_parser("caption", help="caption images with a checkpoint's decoder (coca, cappa)")
    p.add_argument("checkpoint", help="a synclip checkpoint, or a file from `synclip export`")
    p.add_argument("images", nargs="+", help="image files; prints one `image<TAB>caption` line each")
    p.add_argument("--model-name", default=None, help="the architecture of an exported file")
    p.add_argument("--method", choices=["greedy", "beam", "sample"], default="greedy")
    p.add_argument("--max-length", type=int, default=30, help="tokens, start and end included")
    p.add_argument("--beams", type=int, default=6, help="beam search: beams")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling and beam search")
    p.add_argument("--seed", type=int, default=0, help="sampling: seed")
    p.add_argument("--device", default="auto")

    p = sub.add_parser(
        "data", help="build data sets: `data emoji`, or `data shards --source SRC --out DIR` (webdataset)"
    )
    p.add_argument("dataset", choices=["emoji", "shards"])
    p.add_argument("--root", default=None, help="cache folder (default $SYNCLIP_DATA or ~/.cache/synclip)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument(
        "--source", default="emoji", help="shards: `emoji`, a CSV/TSV of image-text pairs, or an image folder"
    )
    p.add_argument("--out", default=None, help="shards: output folder")
    p.add_argument("--shard-size", type=int, default=1000, help="shards: samples per tar file")
    p.add_argument("--format", default="png", choices=["png", "jpg"], help="shards: image encoding")
    p.add_argument("--img-key", default="filepath", help="shards from a CSV: image path column")
    p.add_argument("--caption-key", default="title", help="shards from a CSV: caption column (open_clip's)")
    p.add_argument("--csv-separator", default="tab", help=CSV_SEPARATOR_HELP)

    sub.add_parser("recipes", help="list the shipped recipes")
    sub.add_parser("models", help="list model architecture names")

    p = sub.add_parser("demo", help="build the emoji corpus, train a small CLIP, evaluate it")
    p.add_argument("--minutes", type=float, default=6.5, help="training time budget")
    p.add_argument("--out-dir", default="runs")

    for command in sub.choices.values():  # `synclip train ... --debug` as well as `synclip --debug train`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    args, extra = parser.parse_known_args(argv)
    gather_positionals(parser, args, extra)
    return run_command(args)


# a positional list that may continue after options: `synclip train clip --resume train.name=x`
TRAILING_LISTS = {"train": "overrides", "compare": "entries"}


def gather_positionals(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """argparse fills a ``nargs="*"`` positional only before the first option; words after an option
    (``--resume``, ``--print-config``) belong to the same list, in the order typed."""
    dest = TRAILING_LISTS.get(args.command)
    words = [w for w in extra if not w.startswith("-")] if dest else []
    unknown = [w for w in extra if w not in words]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if words:
        setattr(args, dest, [*getattr(args, dest), *words])


CSV_SEPARATOR_HELP = (
    "CSV separator: tab (open_clip's default), comma, extension (tab for .tsv, comma otherwise) or a "
    "character"
)


def add_eval_data_arguments(p: argparse.ArgumentParser) -> None:
    """The evaluation data flags ``synclip eval`` and ``synclip compare`` share."""
    p.add_argument(
        "--templates",
        default=None,
        metavar="FILE_OR_SET",
        help="prompt templates for every zero-shot task: a set name (emoji, fashion, digits, "
        "openai_imagenet, slip_imagenet) or a file with one template per line ('{}' = class name)",
    )
    p.add_argument(
        "--image-folder",
        default=None,
        metavar="DIR",
        help="your images as DIR/<class>/<image>: zero-shot over the folder names, linear probe and kNN",
    )
    p.add_argument(
        "--class-names", default=None, metavar="FILE", help="prompt names for --image-folder, one per line"
    )
    p.add_argument("--csv", default=None, metavar="FILE", help="your image-text pairs: retrieval Recall@k")
    p.add_argument("--img-key", default="filepath", help="--csv: image path column (open_clip's default)")
    p.add_argument("--caption-key", default="title", help="--csv: caption column (open_clip's default)")
    p.add_argument("--csv-separator", default="tab", help=CSV_SEPARATOR_HELP)
    p.add_argument(
        "--benchmark",
        default=None,
        metavar="NAME",
        help="a standard benchmark from a local copy (--data-root): imagenet1k (ImageFolder layout), "
        "wds/<name> (CLIP_benchmark's webdataset format) or any CLIP_benchmark dataset name",
    )
    p.add_argument("--data-root", default=None, metavar="DIR", help="--benchmark: where its data is")
    hf = p.add_argument_group("a local Hugging Face dataset (pip install 'synclip[hf]')")
    hf.add_argument(
        "--hf-dataset",
        default=None,
        metavar="DIR",
        help="a folder datasets.load_dataset reads (imagefolder, parquet, arrow) or save_to_disk wrote: "
        "zero-shot, linear probe and kNN over its label column, retrieval over its caption column",
    )
    hf.add_argument(
        "--hf-format", default=None, help="imagefolder, parquet, arrow (default: inferred from the files)"
    )
    hf.add_argument("--hf-split", default=None, help="default: the only split, else test, else validation")
    hf.add_argument("--hf-image-key", default=None, help="image column (default: image)")
    hf.add_argument(
        "--hf-caption-key", default=None, help="caption column (default: text, when there is one)"
    )
    hf.add_argument("--hf-label-key", default=None, help="label column (default: label, when there is one)")


def eval_data_options(args) -> dict:
    """The keyword arguments of :func:`synclip.eval.run.evaluate` that the data flags set."""
    out = {
        "templates": args.templates,
        "image_folder": args.image_folder,
        "class_names": args.class_names,
        "csv": args.csv,
        "benchmark": args.benchmark,
        "data_root": args.data_root,
    }
    out = {k: v for k, v in out.items() if v is not None}
    if args.csv is not None:
        out["csv_keys"] = (args.img_key, args.caption_key, args.csv_separator)
    hf = {
        "format": args.hf_format,
        "split": args.hf_split,
        "img_key": args.hf_image_key,
        "caption_key": args.hf_caption_key,
        "label_key": args.hf_label_key,
    }
    if args.hf_dataset is not None:
        out["hf_dataset"] = args.hf_dataset
    if any(v is not None for v in hf.values()):
        out["hf_options"] = {k: v for k, v in hf.items() if v is not None}
    return out


DEBUG_HELP = "show the full traceback of any failure (or set SYNCLIP_DEBUG=1)"


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command inside the error boundary (:mod:`synclip.errors`)."""
    from synclip.errors import EXIT_EXPECTED, debug_requested, is_expected, one_line

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug_requested(args.debug) or not is_expected(err):
            raise
        print(
            f"synclip {args.command}: error: {one_line(err)} (--debug shows the traceback)", file=sys.stderr
        )
        return EXIT_EXPECTED


def cmd_train(args) -> int:
    from synclip.config import load_config
    from synclip.train.loop import train

    overrides = list(args.overrides) + (["train.resume=auto"] if args.resume else [])
    cfg = load_config(args.recipe, overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from synclip import distributed as dist

    if cfg.eval.at_end:  # a mistake in the evaluation data fails now, not after training
        from synclip.eval.run import check_request

        check_request(cfg.eval.tasks, **cfg.eval.data_options())
    run_dir = train(cfg)
    if not dist.is_main():
        return 0
    print(f"run folder: {run_dir}")
    if cfg.eval.at_end:
        from synclip.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(
            run_dir / "checkpoint.pt", tasks=cfg.eval.tasks, limit=cfg.eval.limit, **cfg.eval.data_options()
        )
        print(result["table"])
        from synclip.train.logging import log_eval_result

        log_eval_result(run_dir, result["result"], prefix="eval")
    return 0


def cmd_eval(args) -> int:
    from synclip.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(
        args.checkpoint,
        tasks=args.tasks,
        out=args.out,
        device=args.device,
        limit=args.limit,
        plots=args.plots,
        **eval_data_options(args),
    )
    print(result["table"])
    print(f"wrote {result['path']}")
    return 0


def cmd_export(args) -> int:
    from synclip.io.checkpoint import read_synclip_checkpoint, save_atomic
    from synclip.recipe import saved_heads

    state = read_synclip_checkpoint(args.checkpoint)
    # open_clip reads "state_dict"; synclip.load also rebuilds the objectives' inference heads
    exported = state.get("exported", ["logit_scale"])
    save_atomic({"state_dict": state["model"], "heads": saved_heads(state), "exported": exported}, args.out)
    print(f"wrote {args.out}: open_clip.create_model({state['model_name']!r}, pretrained={str(args.out)!r})")
    return 0


def cmd_caption(args) -> int:
    import torch
    from PIL import Image

    from synclip.api import load

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load(args.checkpoint, model_name=args.model_name, device=device)
    images = []
    for path in args.images:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    options = {"method": args.method, "max_len": args.max_length}
    if args.method != "greedy":
        options["temperature"] = args.temperature
    if args.method == "beam":
        options["beams"] = args.beams
    if args.method == "sample":
        options["generator"] = torch.Generator().manual_seed(args.seed)
    for path, caption in zip(args.images, model.generate(images, **options)):
        print(f"{path}\t{caption}")
    return 0


def cmd_data(args) -> int:
    import time

    from synclip.data.emoji import build_emoji_corpus

    if args.dataset == "shards":
        return _write_shards(args)
    start = time.perf_counter()
    path = build_emoji_corpus(Path(args.root) if args.root else None, size=args.size)
    print(f"emoji corpus at {path} ({time.perf_counter() - start:.1f}s)")
    return 0


def _write_shards(args) -> int:
    from synclip.data.shards import write_shards
    from synclip.data.sources import build_source

    if not args.out:
        raise ValueError("synclip data shards needs --out DIR")
    src = Path(args.source)
    if args.source == "emoji":
        spec = {"kind": "emoji", "root": args.root}
    elif src.is_dir():
        spec = {"kind": "image_folder", "root": str(src)}
    else:
        spec = {"kind": "csv", "path": str(src), "img_key": args.img_key, "caption_key": args.caption_key}
        spec["sep"] = args.csv_separator
    info = write_shards(build_source("shards", spec), args.out, args.shard_size, args.format)
    print(
        f"wrote {info['num_samples']} samples in {info['num_shards']} shards ({info['n_bad']} bad skipped)\n"
        f"data.sources=\"{{pairs: {{kind: webdataset, urls: '{info['urls']}', num_samples: {info['num_samples']}}}}}\""
    )
    return 0


def cmd_compare(args) -> int:
    from synclip.compare import Entry, compare

    entries = [Entry.parse(spec) for spec in args.entries]
    by_label = {e.label: e for e in entries}
    for label, *overrides in args.set_for:
        if label not in by_label:
            raise ValueError(f"--set-for {label}: no such row; rows are {', '.join(by_label) or 'none'}")
        by_label[label].overrides.extend(overrides)
    done = compare(
        entries, args.out, args.seeds, args.set, args.tasks, args.limit, args.checkpoints,
        eval_data_options(args),
    )  # fmt: skip
    print(done["paths"]["md"].read_text())
    print("report: " + ", ".join(str(p) for p in done["paths"].values()))
    return 0


def cmd_recipes(args) -> int:
    from synclip.config import list_recipes

    for name, description in list_recipes().items():
        print(f"{name:16s} {description}")
    return 0


def cmd_models(args) -> int:
    from synclip.models import list_models

    print("\n".join(list_models()))
    return 0


def cmd_demo(args) -> int:
    from synclip.demo import run_demo

    run_demo(minutes=args.minutes, out_dir=args.out_dir)
    return 0


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "export": cmd_export,
    "caption": cmd_caption,
    "compare": cmd_compare,
    "data": cmd_data,
    "recipes": cmd_recipes,
    "models": cmd_models,
    "demo": cmd_demo,
}

if __name__ == "__main__":
    sys.exit(main())
