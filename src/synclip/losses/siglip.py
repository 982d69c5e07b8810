"""SigLIP's pairwise sigmoid loss, exact over the global batch.

- [0] Zhai et al., Sigmoid Loss for Language Image Pre-Training, ICCV 2023,
  https://arxiv.org/abs/2303.15343 (Algorithm 1, Sec. 3.2 and 3.3).

Every image-text pair of the global batch is an independent binary problem: label +1 for the matching
pair (the diagonal), -1 for every other pair, logit ``t * <x_i, y_j> + b``. The paper's loss is
``-1/|B| * sum_i sum_j log sigmoid(z_ij * (t <x_i, y_j> + b))`` with |B| the (local) mini-batch size.

Distributed: each rank scores its B local images against the N = world * B texts of every rank,
gathered with :func:`synclip.distributed.all_gather` (gradients flow back to the owning rank, as in
:func:`synclip.losses.clip.clip_loss`), and divides by B. Averaged over ranks (as DDP does) this is
exactly the loss and the gradient of one process on the global batch.

Memory trade-off: the all-gather keeps the (N, D) gathered texts and the (B, N) logits for the
backward pass. The paper's chunked variant (Sec. 3.3; open_clip's ``SigLipLoss`` with neighbour
exchange) passes text blocks around the ring and only ever materialises a (B, D) remote block and a
(B, B) logit block at a time, at the price of world - 1 sequential communication steps; under plain
autograd (no recomputation) the per-block logits are still kept for the backward, so activation
memory stays O(B * N) either way. We use the gather, the collective synclip already has, because it is
exact, simple and a single communication step; ``benchmarks/sigmoid_vs_softmax.py`` measures the cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from synclip import distributed as dist

# Initial log-temperature t' = log 10 (t = exp(t') = 10) and bias b = -10: [0] Sec. 3.2 / Algorithm 1;
# open_clip's training script uses the same values (open_clip_train/main.py, ``args.siglip``).
INIT_LOGIT_SCALE = math.log(10.0)
INIT_LOGIT_BIAS = -10.0


class LogitScaleBias(torch.nn.Module):
    """The learnable log-temperature t' and bias b of [0], initialised to its values.

    ``forward()`` returns ``(t, b)`` with t = exp(t'), ready for :func:`siglip_loss`.
    """

    def __init__(self, init_logit_scale: float = INIT_LOGIT_SCALE, init_logit_bias: float = INIT_LOGIT_BIAS):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(float(init_logit_scale)))  # t' (scalar)
        self.logit_bias = torch.nn.Parameter(torch.tensor(float(init_logit_bias)))  # b (scalar)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.logit_scale.exp(), self.logit_bias


def sigmoid_logits(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local images against global texts.

    Args:
        image: (B, D) L2-normalised image embeddings of this rank.
        text: (B, D) L2-normalised text embeddings of this rank (same B on every rank).
        logit_scale: scalar temperature t (already exponentiated, t = exp(t')).
        logit_bias: scalar bias b.

    Returns:
        logits (B, N) and targets (B,): local image i's own text is column ``rank * B + i`` (label +1),
        every other column is a negative (label -1); N = world * B.
    """
    all_text = dist.all_gather(text)  # (N, D), differentiable towards every rank's shard
    logits = logit_scale * image @ all_text.T + logit_bias  # (B, D) @ (D, N) -> (B, N)
    b = image.shape[0]
    targets = torch.arange(b, device=image.device) + dist.rank() * b  # (B,)
    return logits, targets


def siglip_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Sigmoid loss of [0]: summed over the B x N pairs of this rank, divided by the local B.

    Written as ``softplus(-z * logit)`` (= -log sigmoid(z * logit)) with the sign flip done by an
    out-of-place ``index_put`` on the B positive entries: autograd keeps a single (B, N) tensor (the
    softplus input), not a label matrix and a (B, N) product as ``logsigmoid(labels * logits)`` would.

    Returns ``{"loss", "acc", "pos_acc", "neg_acc"}`` (metrics on this rank's rows, no gradient):
    ``acc`` is image-to-text top-1 matching accuracy over the global texts (comparable to
    ``clip_loss``'s), ``pos_acc`` the fraction of matching pairs with a positive logit and
    ``neg_acc`` the fraction of non-matching pairs with a negative logit.
    """
    logits, targets = sigmoid_logits(image, text, logit_scale, logit_bias)  # (B, N), (B,)
    rows = torch.arange(logits.shape[0], device=logits.device)  # (B,)
    positives = logits[rows, targets]  # (B,)
    flipped = logits.index_put((rows, targets), -positives)  # (B, N): -z_ij * logit_ij
    loss = F.softplus(flipped).sum() / image.shape[0]
    with torch.no_grad():
        b, n = logits.shape
        acc = (logits.argmax(dim=1) == targets).float().mean()
        pos_acc = (positives > 0).float().mean()
        wrong_negatives = (logits >= 0).sum() - (positives >= 0).sum()  # non-matching pairs scored >= 0
        neg_acc = 1.0 - wrong_negatives.float() / max(b * n - b, 1)
    return {"loss": loss, "acc": acc, "pos_acc": pos_acc, "neg_acc": neg_acc}
