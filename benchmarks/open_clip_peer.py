"""Train the same model on the same data with open_clip's own training script, for a peer result.

    python benchmarks/open_clip_peer.py --epochs 12 --logs /tmp/open_clip_runs

Registers synclip's small architecture configs with open_clip, then runs `open_clip_train.main` on
the emoji corpus's Twemoji TSV with the hyper-parameters of synclip's `clip` recipe. Evaluate the
result with `synclip eval` through `synclip.load(path, model_name=...)`.
"""

from __future__ import annotations

import argparse
import os

import synclip.models  # noqa: F401  (registers tiny-vit-48 / micro-vit-32 with open_clip)
from synclip.data.emoji import build_emoji_corpus


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny-vit-48")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--logs", default="/tmp/open_clip_runs")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    corpus = build_emoji_corpus()
    os.chdir(corpus)  # open_clip reads the TSV's relative file paths from the working directory
    from open_clip_train.main import main as open_clip_main

    open_clip_main(
        [
            "--train-data", str(corpus / "twemoji.tsv"), "--dataset-type", "csv",
            "--csv-img-key", "filepath", "--csv-caption-key", "caption", "--csv-separator", "\t",
            "--model", args.model, "--batch-size", str(args.batch), "--epochs", str(args.epochs),
            "--lr", "1e-3", "--wd", "0.1", "--warmup", "50", "--beta1", "0.9", "--beta2", "0.98",
            "--eps", "1e-6", "--grad-clip-norm", "1.0", "--precision", "fp32", "--workers", "2",
            "--seed", "0", "--logs", args.logs, "--name", args.name or f"open_clip-{args.model}-e{args.epochs}",
            "--save-frequency", str(args.epochs), "--zeroshot-frequency", "0", "--log-every-n-steps", "10",
        ]
    )  # fmt: skip


if __name__ == "__main__":
    main()
