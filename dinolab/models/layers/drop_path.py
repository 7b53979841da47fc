"""Stochastic depth: drop a whole residual branch per sample during training."""

from __future__ import annotations

import torch
from torch import nn


def drop_path_mask(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Per-sample keep mask [B, 1, ..., 1] of x's dtype, already scaled by 1 / keep_prob."""
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample, broadcast over tokens
    mask = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0:
        mask.div_(keep_prob)
    return mask


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero the branch for a random subset of samples and rescale the rest by 1 / keep_prob.

    The rescaling keeps the expected value of the residual branch unchanged, so evaluation
    (no dropping) sees the same activation statistics as training.
    """
    if drop_prob == 0.0 or not training:
        return x
    return x * drop_path_mask(x, drop_prob)


class DropPath(nn.Module):
    """Per-sample stochastic depth (Huang et al. 2016) as used by DINO and DINOv2."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop path rate {drop_prob} must be in [0, 1).")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def add_to(self, residual: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """residual + self(branch) in one pass (addcmul) when paths are being dropped."""
        if self.drop_prob == 0.0 or not self.training:
            return residual + branch
        return torch.addcmul(residual, branch, drop_path_mask(branch, self.drop_prob))

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
