"""LayerScale (CaiT / DINOv2): a learned per-channel gain on each residual branch."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiply by `gamma` (init small, e.g. 1e-5) so deep ViTs start close to identity.

    The parameter is called `gamma` to match the published DINOv2 checkpoints.
    """

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, self.init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
