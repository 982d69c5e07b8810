"""Raw pixels as image features: the no-learning floor for image-only evaluation tasks.

Evaluates :class:`synclip.eval.baselines.PixelModel` (preprocessed pixels, flattened) at one image
size on image-only tasks, so that a trained tower's image-to-image retrieval or kNN accuracy can be
read against what the pixels already give. Prints the eval table; ``--json`` keeps the result.

    python benchmarks/pixel_baseline.py --size 48 --tasks image_retrieval knn --limit 4000
"""

from __future__ import annotations

import argparse

import open_clip

from synclip.eval.baselines import PixelModel
from synclip.eval.run import evaluate, format_table, write_eval_json


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=48, help="image side after preprocessing (pixels)")
    parser.add_argument(
        "--tasks", nargs="*", default=["image_retrieval", "knn"], help="image-only eval tasks"
    )
    parser.add_argument("--limit", type=int, default=None, help="cap the images per eval task")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    preprocess = open_clip.image_transform(args.size, is_train=False)  # resize, crop, CLIP mean/std
    result = evaluate(PixelModel(), preprocess, None, tasks=args.tasks, limit=args.limit)
    result["settings"]["model"] = f"pixels at {args.size} px"
    print(format_table(result))
    if args.json:
        write_eval_json(result, args.json)


if __name__ == "__main__":
    main()
