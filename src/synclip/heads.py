"""Small heads that objectives own: MLP projectors / predictors and a prototype layer.

- SLIP's SimCLR head (Mu et al. 2021, https://arxiv.org/abs/2112.12750):
  ``Linear(W, 4096) BN ReLU Linear(4096, 4096) BN ReLU Linear(4096, 256)``.
- DeCLIP's SimSiam projector / predictor (Li et al. 2022, https://arxiv.org/abs/2110.05208, after
  Chen & He 2021): ``Linear BN ReLU Linear BN ReLU Linear BN`` and ``Linear BN ReLU Linear``.
- A DINO-style prototype head (Caron et al. 2021) for nCLIP: MLP -> bottleneck -> L2 norm ->
  weight-normalised ``Linear(bottleneck, K)`` without bias.

BatchNorm here is ``nn.BatchNorm1d``; under DDP the training code converts it to SyncBatchNorm so that
batch statistics are global (SLIP uses SyncBatchNorm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(dims: list[int], bn_last: bool = False, bn: bool = True) -> nn.Sequential:
    """``Linear -> [BN] -> ReLU`` for every hidden layer, then a final Linear (+ BN if ``bn_last``).

    ``dims = [in, hidden..., out]``; e.g. SLIP's head is ``mlp([W, 4096, 4096, 256])``.
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {dims}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=not (bn and (not last or bn_last))))
        if not last:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)] if bn else [nn.GELU()]
        elif bn_last:
            layers.append(nn.BatchNorm1d(b))
    return nn.Sequential(*layers)


class PrototypeHead(nn.Module):
    """MLP -> bottleneck -> L2 normalise -> weight-normalised prototype logits (B, K).

    ``prototypes`` may be shared between two heads (nCLIP's image and text heads score the same K
    prototypes, so each modality can predict the other's assignment).
    """

    def __init__(self, in_dim: int, hidden: int, bottleneck: int, prototypes: nn.Module):
        super().__init__()
        self.mlp = mlp([in_dim, hidden, hidden, bottleneck], bn=False)
        self.prototypes = prototypes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)  # (B, bottleneck)
        return self.prototypes(z)  # (B, bottleneck) @ (bottleneck, K) -> (B, K)


def prototype_layer(bottleneck: int, k: int) -> nn.Module:
    """Weight-normalised ``Linear(bottleneck, K)`` without bias, its norm fixed to 1 (as in DINO)."""
    layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, k, bias=False))
    layer.parametrizations.weight.original0.data.fill_(1.0)
    layer.parametrizations.weight.original0.requires_grad = False
    return layer
