"""`curate embed --descriptor grid`: a near-copy descriptor that keeps layout.

A network trained for classes (CLS, GeM of the last map) is invariant to exactly the edits
a near copy goes through (crop, flip, colour, JPEG), so a copy is no closer to its original
than to other images of its kind. This descriptor reads feature maps of early layers (less
invariant), pools each over a cells x cells grid (GeM, p = 4, for the non-negative maps of a
ResNet stage; the mean for a ViT's signed tokens) so the layout stays, L2-normalises each
layer's part, and averages the parts of the image and of its mirror: a flipped copy gives
the same row (the maps: `models.patch_features.layer_maps`). Measured on CIFAR-10 near
copies in benchmarks/RESULTS.md (Data curation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinolab.models.patch_features import layer_maps

GRID_LAYERS = (1, 2)
GRID_CELLS = 3


def grid_pool(fmap: Tensor, cells: int, p: float | None = 4.0) -> Tensor:
    """[B, C, h, w] -> [B, C * cells^2]: GeM (p) or the mean (p=None) over each grid cell."""
    if p is None:
        return F.adaptive_avg_pool2d(fmap, cells).flatten(1)
    return F.adaptive_avg_pool2d(fmap.clamp(min=1e-6).pow(p), cells).pow(1.0 / p).flatten(1)


def _one_side(model: nn.Module, images: Tensor, layers: Sequence[int], cells: int) -> list[Tensor]:
    p = None if hasattr(model, "get_intermediate_layers") else 4.0  # ViT tokens are signed
    return [F.normalize(grid_pool(m, cells, p), dim=1) for m in layer_maps(model, images, layers)]


def grid_descriptor(
    model: nn.Module,
    images: Tensor,
    layers: Sequence[int] = GRID_LAYERS,
    cells: int = GRID_CELLS,
) -> Tensor:
    """[B, sum_l C_l * cells^2]: per layer, the normalised mean of the image's and its
    mirror's grid-pooled map (unit norm per layer; the caller normalises the whole row)."""
    if cells < 1:
        raise ValueError(f"grid cells must be >= 1, got {cells}.")
    image = _one_side(model, images, layers, cells)
    mirror = _one_side(model, images.flip(-1), layers, cells)
    return torch.cat([F.normalize(a + b, dim=1) for a, b in zip(image, mirror, strict=True)], 1)
