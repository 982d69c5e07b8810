"""End-to-end fine-tuning of the image tower with a linear head, SLIP's third evaluation protocol.

SLIP (Mu et al. 2021, §4.1 and Appendix) reports zero-shot transfer, linear probes and end-to-end
fine-tuning of the image encoder on ImageNet with a new linear classifier, after BEiT's recipe. This
is the same protocol scaled down to a CPU-sized run: a copy of the image tower (the model itself is
left untouched) feeds its projected embedding (B, D) to a zero-initialised ``nn.Linear(D, C)``; both
are trained on cross-entropy with AdamW (decoupled weight decay on the weight matrices only, not on
biases, norms or embeddings), a linear warm-up and a cosine decay to zero, for a few epochs over a
small seeded training subset, then scored by top-1 / top-5 / mean per-class recall on the test images.

Images go through the evaluation preprocessing (no augmentation); mini-batches are shuffled by a
seeded generator, so a CPU run is deterministic. Left out of the paper's recipe at this scale:
layer-wise learning-rate decay, mixup/cutmix, label smoothing and drop path.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from synclip.eval.features import _as_image
from synclip.eval.metrics import classification_metrics
from synclip.models.weight_decay import no_decay


class ImageClassifier(torch.nn.Module):
    """An image tower and a linear head: (B, 3, H, W) -> (B, C) logits."""

    def __init__(self, tower: torch.nn.Module, embed_dim: int, num_classes: int):
        super().__init__()
        self.tower = tower
        self.head = torch.nn.Linear(embed_dim, num_classes)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.tower(images), dim=-1))  # (B, D) unit rows -> (B, C)


def _batch(images: Sequence, rows: Sequence[int], preprocess, device) -> torch.Tensor:
    return torch.stack([preprocess(_as_image(images[i])) for i in rows]).to(device)  # (b, 3, H, W)


def _param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Pre-training's weight-decay exclusions (``synclip.models.weight_decay.no_decay``: norms, biases, rank < 2),
    plus the class and position tokens, which fine-tuning recipes (BEiT, SLIP) also leave undecayed."""
    decay, rest = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        is_token = name.endswith(("class_embedding", "positional_embedding"))
        (rest if no_decay(name, param) or is_token else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _probe_head(classifier: ImageClassifier, images, labels, preprocess, device, batch_size, seed) -> None:
    """Set the head to an AdamW linear probe (synclip.eval.linear_probe) fitted on the frozen tower's
    unit-length features of the training images, with CLIP_benchmark's lr 0.1 and no weight decay."""
    from synclip.eval.linear_probe import _fit_adamw

    classifier.eval()

    def unit(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(classifier.tower(x), dim=-1)  # (b, D)

    features = _map_batches(unit, images, preprocess, device, batch_size)  # (N, D)
    y = torch.as_tensor(list(labels), dtype=torch.long)  # (N,)
    with torch.enable_grad():
        head = _fit_adamw(features, y, classifier.head.out_features, 0.0, 0.1, 10, 256, seed)
    with torch.no_grad():
        classifier.head.weight.copy_(head.weight)
        classifier.head.bias.copy_(head.bias)


@torch.no_grad()
def _map_batches(fn: Callable, images: Sequence, preprocess, device, batch_size: int) -> torch.Tensor:
    """``fn`` on the preprocessed images, batch by batch, outputs concatenated on the CPU."""
    out = []
    for start in range(0, len(images), batch_size):
        rows = range(start, min(start + batch_size, len(images)))
        out.append(fn(_batch(images, rows, preprocess, device)).float().cpu())  # (b, ...)
    return torch.cat(out)


def predict(
    classifier: torch.nn.Module, images: Sequence, preprocess, device, batch_size: int
) -> torch.Tensor:
    """(N, C) logits on the CPU, the classifier in eval mode."""
    classifier.eval()
    return _map_batches(classifier, images, preprocess, device, batch_size)  # (N, C)


def finetune(
    model,
    preprocess: Callable[[Image.Image], torch.Tensor],
    train_images: Sequence,
    train_labels: Sequence[int],
    test_images: Sequence,
    test_labels: Sequence[int],
    num_classes: int,
    device: str | torch.device = "cpu",
    epochs: int = 5,
    lr: float = 1e-4,
    head_lr: float = 0.1,
    weight_decay: float = 0.05,
    batch_size: int = 64,
    warmup_fraction: float = 0.1,
    head_init: str = "zero",
    seed: int = 0,
) -> dict:
    """Fine-tune ``model.visual`` (a copy) with a linear head; ``*_images`` are PIL images or dataset
    items holding one, ``*_labels`` ints in [0, C).

    ``head_init="zero"`` starts from a zero head (SLIP, BEiT); ``"probe"`` first fits the head as an
    AdamW linear probe on the frozen features (LP-FT, Kumar et al. 2022) and reports that head's test
    metrics as ``start_metrics``. Returns ``{"metrics", "start_metrics", "settings", "history":
    [{"epoch", "train_loss", "train_top1"}, ...]}``.
    """
    tower = copy.deepcopy(model.visual).float().to(device)
    with torch.no_grad():
        probe = _batch(train_images, [0], preprocess, device)  # (1, 3, H, W)
        embed_dim = tower.eval()(probe).shape[-1]
    classifier = ImageClassifier(tower, embed_dim, num_classes).to(device)
    start_metrics = None
    if head_init == "probe":  # LP-FT: start from a linear probe on the frozen features
        _probe_head(classifier, train_images, train_labels, preprocess, device, batch_size, seed)
        start_metrics = classification_metrics(
            predict(classifier, test_images, preprocess, device, batch_size),
            torch.as_tensor(list(test_labels), dtype=torch.long),
        )
    elif head_init != "zero":
        raise ValueError(f"head_init must be 'zero' or 'probe', got {head_init!r}")
    groups = _param_groups(classifier.tower, weight_decay)
    for group in groups:
        group["base_lr"] = lr
    head = {"params": list(classifier.head.parameters()), "weight_decay": 0.0, "base_lr": head_lr}
    optimizer = torch.optim.AdamW([*groups, head], lr=lr)
    labels = torch.as_tensor(list(train_labels), dtype=torch.long)  # (N,)
    n = len(labels)
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    warmup = round(warmup_fraction * total)
    generator = torch.Generator().manual_seed(seed)
    history, step = [], 0
    with torch.enable_grad():  # callers may hold torch.no_grad()
        for epoch in range(epochs):
            classifier.train()
            order = torch.randperm(n, generator=generator)  # (N,)
            loss_sum, correct = 0.0, 0
            for start in range(0, n, batch_size):
                scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * step / total))
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * scale
                rows = order[start : start + batch_size]  # (b,)
                logits = classifier(_batch(train_images, rows.tolist(), preprocess, device))  # (b, C)
                target = labels[rows].to(device)  # (b,)
                loss = F.cross_entropy(logits, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(rows)
                correct += (logits.argmax(dim=1) == target).sum().item()
                step += 1
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / n, "train_top1": correct / n})
    logits = predict(classifier, test_images, preprocess, device, batch_size)  # (N_test, C)
    return {
        "metrics": classification_metrics(logits, torch.as_tensor(list(test_labels), dtype=torch.long)),
        "start_metrics": start_metrics,  # the probe head on the untouched tower (head_init="probe"), else None
        "settings": {
            "protocol": "finetune",
            "head_init": head_init,
            "epochs": epochs,
            "lr": lr,
            "head_lr": head_lr,
            "weight_decay": weight_decay,
            "batch_size": batch_size,
            "warmup_steps": warmup,
            "steps": total,
            "seed": seed,
            "n_train": n,
            "n_test": len(test_labels),
        },
        "history": history,
    }
