"""PCA whitening of descriptors, learned on a separate image set (copy detection).

x -> diag(eigval^-power) V^T (x - mean), eigenvalues floored at max(eigval) x 1e-5 (DINO's
`utils.PCA`). The covariance is centred by default; DINO's script centres the features but
takes the uncentred second moment X^T X / n of the whitening set (`centred=False`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PCAWhitening:
    mean: Tensor  # [D]
    projection: Tensor  # [D, D], rows = principal directions scaled by eigval^-power
    centred: bool
    n_floored: int  # eigenvalues raised to the floor: > 0 when the whitening set is too small

    @classmethod
    def fit(
        cls, features: Tensor, power: float = 0.5, floor: float = 1e-5, centred: bool = True
    ) -> PCAWhitening:
        """Learn the whitening of `features` [N, D] (float64 inside for a stable eigh)."""
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError("Whitening needs at least two descriptors: add whitening images.")
        x = features.double()
        mean = x.mean(dim=0)
        base = x - mean if centred else x
        cov = base.T @ base / x.shape[0]
        eigval, eigvec = torch.linalg.eigh(cov)
        eps = float(eigval.max()) * floor
        n_floored = int((eigval < eps).sum())
        eigval = eigval.clamp(min=eps)
        order = torch.argsort(eigval, descending=True)
        eigval, eigvec = eigval[order], eigvec[:, order]
        projection = torch.diag(eigval.pow(-power)) @ eigvec.T
        return cls(mean.float(), projection.float(), centred, n_floored)

    def apply(self, features: Tensor) -> Tensor:
        """Whitened descriptors [N, D] (not normalised)."""
        return (features.float() - self.mean) @ self.projection.T
