"""Linear probes on frozen image features: a linear classifier fitted on train, scored on test.

Two protocols, both on L2-normalised features (the cached features are already unit-length; they are
renormalised here so that any (N, D) array can be passed):

``"lbfgs"``, the CLIP paper's (Radford et al. 2021, §3.2 and Appendix A.3): scikit-learn's
``LogisticRegression`` (L-BFGS, L2 penalty, ``max_iter=1000``), its inverse regularisation ``C``
chosen on a validation split carved (seeded) from the training features, then refitted on train + val
and scored on test. The paper sweeps 96 log-spaced values with a coarse-to-fine search; here the coarse
grid is 7 decades ``C = 10^-3 .. 10^3`` and ``refine`` rounds each halve the step around the best value
(two more fits per round): 11 fits by default. Fits that stop at ``max_iter`` are kept, as in the paper.

``"adamw"``, CLIP_benchmark's (LAION-AI, ``metrics/linear_probe.py``): a ``torch.nn.Linear`` trained
with AdamW on cross-entropy for a fixed number of epochs under a cosine learning-rate schedule, the
weight decay chosen from a small grid on the validation split (CLIP_benchmark searches 1e-6 .. 1e-2),
then refitted on train + val. Weights start at zero and mini-batches are shuffled by a seeded
generator, so a CPU run is deterministic.

Both choose the hyper-parameter by validation top-1, a tie going to the stronger regularisation (the
smaller C, the larger weight decay), and report test metrics with
:func:`synclip.eval.metrics.classification_metrics` on the probe's logits.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from synclip.eval.metrics import classification_metrics

PROTOCOLS = ("lbfgs", "adamw")
LOG10_C = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def check_protocol(protocol: str) -> None:
    """Raise ValueError for an unknown protocol, ModuleNotFoundError when "lbfgs" lacks scikit-learn."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown linear-probe protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "lbfgs":
        import sklearn.linear_model  # noqa: F401  (the optional "eval" extra)


def unit_features(x) -> torch.Tensor:
    """(N, D) numpy array or tensor -> (N, D) float32 CPU tensor of unit-length rows."""
    return F.normalize(torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float().cpu(), dim=-1)


def as_labels(y) -> torch.Tensor:
    """(N,) ints (list, numpy or tensor) -> (N,) int64 CPU tensor."""
    return torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long().cpu()


def validation_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit index, val index): a seeded random ``val_fraction`` of ``range(n)`` (at least one each)."""
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 training examples, got {n}")
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # (n,)
    return perm[n_val:], perm[:n_val]


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item()


# --- L-BFGS logistic regression (CLIP paper) -------------------------------------------------------


def _fit_lbfgs(x: torch.Tensor, y: torch.Tensor, c: float, num_classes: int, max_iter: int):
    """Fit on (N, D) ``x``; returns a function (M, D) -> (M, C) log-probabilities (-1e9: unseen class)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    seen = y.unique()  # classes present in this fit: sklearn only models those
    if len(seen) == 1:  # one class: nothing to fit, always answer it

        def predict_one(z: torch.Tensor) -> torch.Tensor:
            out = torch.full((len(z), num_classes), -1e9)  # (M, C)
            out[:, seen] = 0.0
            return out

        return predict_one
    model = LogisticRegression(C=c, max_iter=max_iter)  # L2 penalty, lbfgs solver, multinomial
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x.numpy(), y.numpy())

    def predict(z: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(z), num_classes), -1e9)  # (M, C)
        out[:, torch.as_tensor(model.classes_)] = torch.as_tensor(model.predict_log_proba(z.numpy())).float()
        return out

    return predict


def lbfgs_probe(
    train_x,
    train_y,
    test_x,
    test_y,
    num_classes: int | None = None,
    log10_c: Sequence[float] = LOG10_C,
    refine: int = 2,
    max_iter: int = 1000,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict:
    """The CLIP-paper probe. ``*_x`` (N, D) features, ``*_y`` (N,) labels in [0, C).

    Returns ``{"metrics", "chosen": {"C"}, "sweep": [{"C", "val_top1"}, ...], "settings"}``.
    """
    train_x, test_x, train_y, test_y = (
        unit_features(train_x),
        unit_features(test_x),
        as_labels(train_y),
        as_labels(test_y),
    )
    c = num_classes if num_classes is not None else int(max(train_y.max(), test_y.max())) + 1
    fit, val = validation_split(len(train_x), val_fraction, seed)
    scores: dict[float, float] = {}  # log10 C -> validation top-1

    def score(e: float) -> float:
        if e not in scores:
            predict = _fit_lbfgs(train_x[fit], train_y[fit], 10.0**e, c, max_iter)
            scores[e] = top1(predict(train_x[val]), train_y[val])
        return scores[e]

    grid = sorted(log10_c)
    best = max(grid, key=score)  # the first best, i.e. the smallest C among ties
    step = (grid[1] - grid[0]) if len(grid) > 1 else 1.0
    for _ in range(refine):
        step /= 2
        best = max(sorted({best - step, best, best + step}), key=score)
    predict = _fit_lbfgs(train_x, train_y, 10.0**best, c, max_iter)  # refit on train + val
    return {
        "metrics": classification_metrics(predict(test_x), test_y),
        "chosen": {"C": 10.0**best},
        "sweep": [{"C": 10.0**e, "val_top1": scores[e]} for e in sorted(scores)],
        "settings": {
            "protocol": "lbfgs",
            "max_iter": max_iter,
            "val_fraction": val_fraction,
            "seed": seed,
            "n_fit": len(fit),
            "n_val": len(val),
        },
    }


# --- AdamW-trained nn.Linear (CLIP_benchmark) ------------------------------------------------------


def _fit_adamw(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    lr: float,
    epochs: int,
    batch_size: int | None,
    seed: int,
) -> torch.nn.Linear:
    """Train a zero-initialised (D -> C) linear layer with AdamW and a cosine schedule on (N, D) ``x``."""
    n, d = x.shape
    probe = torch.nn.Linear(d, num_classes)
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    batch = n if batch_size is None else min(batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total = epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)  # (N,)
        for start in range(0, n, batch):
            for group in optimizer.param_groups:  # cosine decay from lr to 0, no warm-up
                group["lr"] = 0.5 * (1 + math.cos(math.pi * step / total)) * lr
            rows = order[start : start + batch]  # (b,)
            loss = F.cross_entropy(probe(x[rows]), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return probe.eval()


def adamw_probe(
    train_x,
    train_y,
    test_x,
    test_y,
    num_classes: int | None = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    lr: float = 0.1,
    epochs: int = 10,
    batch_size: int | None = 256,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict:
    """The CLIP_benchmark probe; ``batch_size=None`` trains full-batch. Same returns as :func:`lbfgs_probe`,
    with ``chosen = {"weight_decay"}``."""
    train_x, test_x, train_y, test_y = (
        unit_features(train_x),
        unit_features(test_x),
        as_labels(train_y),
        as_labels(test_y),
    )
    c = num_classes if num_classes is not None else int(max(train_y.max(), test_y.max())) + 1
    fit, val = validation_split(len(train_x), val_fraction, seed)
    args = dict(num_classes=c, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed)
    sweep = []
    with torch.enable_grad():  # callers may hold torch.no_grad()
        for wd in weight_decays:
            probe = _fit_adamw(train_x[fit], train_y[fit], weight_decay=wd, **args)
            with torch.no_grad():
                sweep.append({"weight_decay": wd, "val_top1": top1(probe(train_x[val]), train_y[val])})
        ranked = sorted(sweep, key=lambda row: -row["weight_decay"])  # a tie goes to the larger decay
        best = max(ranked, key=lambda row: row["val_top1"])["weight_decay"]
        probe = _fit_adamw(train_x, train_y, weight_decay=best, **args)  # refit on train + val
    with torch.no_grad():
        logits = probe(test_x)  # (N_test, C)
    return {
        "metrics": classification_metrics(logits, test_y),
        "chosen": {"weight_decay": best},
        "sweep": sweep,
        "settings": {
            "protocol": "adamw",
            "lr": lr,
            "epochs": epochs,
            "batch_size": batch_size,
            "val_fraction": val_fraction,
            "seed": seed,
            "n_fit": len(fit),
            "n_val": len(val),
        },
    }


def linear_probe(
    train_x, train_y, test_x, test_y, num_classes: int | None = None, protocol: str = "lbfgs", **options
) -> dict:
    """Dispatch to :func:`lbfgs_probe` or :func:`adamw_probe`; ``options`` are their keyword arguments."""
    check_protocol(protocol)
    probe = lbfgs_probe if protocol == "lbfgs" else adamw_probe
    return probe(train_x, train_y, test_x, test_y, num_classes=num_classes, **options)
