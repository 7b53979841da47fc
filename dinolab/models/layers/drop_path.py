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


DROP_PATH_IMPLS = ("mask", "subset", "auto")


class DropPath(nn.Module):
    """Per-sample stochastic depth (Huang et al. 2016) as used by DINO and DINOv2.

    `impl` says how a block applies it: "mask" computes the branch for every sample and
    zeroes the dropped ones; "subset" (DINOv2's efficient stochastic depth) computes the
    branch only for a random subset of round(B * keep) samples and adds it back scaled by
    B / subset, which has the same expectation at a fraction of the cost; "auto" is "subset"
    above a 0.1 rate (DINOv2's rule), "mask" otherwise. Calling the module always masks.
    """

    def __init__(self, drop_prob: float = 0.0, impl: str = "mask") -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop path rate {drop_prob} must be in [0, 1).")
        if impl not in DROP_PATH_IMPLS:
            raise ValueError(f"drop path impl {impl!r} is unknown; use one of {DROP_PATH_IMPLS}.")
        self.drop_prob = drop_prob
        self.impl = impl

    def uses_subset(self) -> bool:
        """True when the branch should run on a kept subset of the batch only (training)."""
        if not self.training or self.drop_prob == 0.0:
            return False
        return self.impl == "subset" or (self.impl == "auto" and self.drop_prob > 0.1)

    def keep_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(indices of the kept samples, scale B / kept): at least one sample is kept."""
        b = x.shape[0]
        kept = max(int(b * (1.0 - self.drop_prob)), 1)
        return torch.randperm(b, device=x.device)[:kept], b / kept

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def add_to(self, residual: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """residual + self(branch) in one pass (addcmul) when paths are being dropped."""
        if self.drop_prob == 0.0 or not self.training:
            return residual + branch
        return torch.addcmul(residual, branch, drop_path_mask(branch, self.drop_prob))

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, impl={self.impl}"
