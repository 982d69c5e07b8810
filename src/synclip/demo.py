"""``synclip demo``: emoji corpus -> a small CLIP trained on the CPU -> evaluation table, in minutes.

The number of epochs is fitted to a time budget from a short measurement of this machine's step
time, so the demo takes about as long on a laptop as on a 2-core CI box, and longer runs on faster
hardware simply train for more epochs.
"""

from __future__ import annotations

import time

import torch

from synclip.config import load_config
from synclip.data.emoji import build_emoji_corpus
from synclip.eval.run import format_table
from synclip.evaluate import evaluate_checkpoint
from synclip.train.loop import train
from synclip.train.optim import create_optimizer
from synclip.train.setup import build_pretrainer

# What the demo shows: tasks the emoji names can teach. `synclip eval` reports every task, including
# those a CLIP trained on emoji names cannot beat chance on (see docs/evaluation.md).
DEMO_TASKS = ["head_noun", "retrieval", "cross_style"]
SHOWN = ["head_noun/twemoji", "retrieval/twemoji", "retrieval/openmoji"]


def measure_pairs_per_second(cfg, steps: int = 6) -> float:
    """Time a few forward/backward/AdamW steps on random inputs of the run's shapes."""
    pretrainer = build_pretrainer(cfg).train()
    model = pretrainer.model
    b = cfg.train.batch_size
    batch = {
        "pairs": {
            "image": torch.randn(b, 3, model.image_size, model.image_size),
            "text": torch.randint(0, 49408, (b, model.context_length)),
        }
    }
    t = cfg.train
    optimizer = create_optimizer(
        pretrainer, t.lr, t.weight_decay, (t.beta1, t.beta2), t.eps, decoupled=t.decoupled_weight_decay
    )
    for i in range(steps + 2):
        if i == 2:  # the first steps warm up allocators and kernels
            start = time.perf_counter()
        optimizer.zero_grad()
        pretrainer(batch)["loss"].backward()
        optimizer.step()
    return steps * b / (time.perf_counter() - start)


def run_demo(minutes: float = 6.5, out_dir: str = "runs") -> dict:
    t0 = time.perf_counter()
    print("== 1/3 emoji corpus (Twemoji images, CLDR names; OpenMoji as a held-out art style)")
    corpus = build_emoji_corpus()
    n_pairs = sum(1 for _ in open(corpus / "twemoji.tsv")) - 1
    print(f"   {n_pairs} Twemoji image-caption pairs in {corpus} ({time.perf_counter() - t0:.0f}s)")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    cfg = load_config("clip", [f"train.out_dir={out_dir}", f"train.name=demo-{stamp}", "eval.at_end=false"])
    rate = measure_pairs_per_second(cfg)
    epochs = max(1, int(minutes * 60 * rate * 0.9 / n_pairs))  # 10% margin for data loading and logging
    cfg.train.epochs = epochs
    print(
        f"== 2/3 train `clip` on {cfg.model.name}: {epochs} epochs at ~{rate:.0f} pairs/s (budget {minutes} min)"
    )
    run_dir = train(cfg)

    print("== 3/3 evaluate")
    result = evaluate_checkpoint(run_dir / "checkpoint.pt", tasks=DEMO_TASKS)
    print(format_table(result["result"], tasks=SHOWN))
    print(
        "\nretrieval/openmoji is transfer to an unseen art style. Category names never occur in the\n"
        "captions and Fashion-MNIST photos are another domain: `synclip eval` reports those too, near chance."
    )
    print(f"\nrun folder: {run_dir} (checkpoint.pt, metrics.jsonl, tensorboard/, plots/, eval.json)")
    print(f"total time: {(time.perf_counter() - t0) / 60:.1f} min")
    return result
