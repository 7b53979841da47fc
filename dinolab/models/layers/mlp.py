"""Feed-forward networks of a transformer block: the classic GELU MLP and SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dinolab.models.layers.linear import Linear


class Mlp(nn.Module):
    """Linear -> GELU -> Linear (`fc1` / `fc2`, the DINO / DINOv2 / timm key names)."""

    def __init__(
        self, in_features: int, hidden_features: int, bias: bool = True, kernel: str = "auto"
    ) -> None:
        super().__init__()
        self.fc1 = Linear(in_features, hidden_features, bias=bias, kernel=kernel)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_features, in_features, bias=bias, kernel=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def swiglu_hidden_dim(dim: int, mlp_ratio: float) -> int:
    """DINOv2's SwiGLU width: 2/3 of the MLP width (same parameter count), rounded up to 8."""
    hidden = int(dim * mlp_ratio * 2 / 3)
    return (hidden + 7) // 8 * 8


class SwiGLUFFN(nn.Module):
    """SwiGLU FFN (Shazeer 2020) laid out like DINOv2's `SwiGLUFFNFused`.

    `w12` computes the gate and the value in one matmul (fused), `w3` projects back;
    keeping these names lets the published ViT-g/14 checkpoints load as they are.
    """

    def __init__(
        self, in_features: int, hidden_features: int, bias: bool = True, kernel: str = "auto"
    ) -> None:
        super().__init__()
        self.w12 = Linear(in_features, 2 * hidden_features, bias=bias, kernel=kernel)
        self.w3 = Linear(hidden_features, in_features, bias=bias, kernel=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)
