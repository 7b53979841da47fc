"""`curate embed --descriptor grid`: a near-copy descriptor that keeps layout.

A network trained for classes (CLS, GeM of the last map) is invariant to exactly the edits
a near copy goes through (crop, flip, colour, JPEG), so a copy is no closer to its original
than to other images of its kind. This descriptor reads feature maps of early layers (less
invariant), pools each over a cells x cells grid (GeM, p = 4, for the non-negative maps of a
ResNet stage; the mean for a ViT's signed tokens) so the layout stays, L2-normalises each
layer's part, and averages the parts of the image and of its mirror: a flipped copy gives
the same row. Measured on CIFAR-10 near copies in benchmarks/RESULTS.md (Data curation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GRID_LAYERS = (1, 2)
GRID_CELLS = 3


def _stem_and_stages(model: nn.Module) -> tuple[Callable, list[nn.Module]] | None:
    """(stem, stages) of a dinolab ResNet (`small_resnet` or a torchvision one), else None."""
    if hasattr(model, "stem") and isinstance(getattr(model, "stages", None), nn.Sequential):
        return model.stem, list(model.stages)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    if all(hasattr(model, n) for n in names):
        m = model
        return (lambda x: m.maxpool(m.relu(m.bn1(m.conv1(x))))), [
            m.layer1,
            m.layer2,
            m.layer3,
            m.layer4,
        ]
    return None


def layer_count(model: nn.Module) -> int:
    """Layers `layer_maps` can read: a ViT's blocks or a ResNet's stages (0: none)."""
    if hasattr(model, "get_intermediate_layers"):
        return int(getattr(model, "n_blocks", 0))
    parts = _stem_and_stages(model)
    return len(parts[1]) if parts else 0


def layer_maps(model: nn.Module, images: Tensor, layers: Sequence[int]) -> list[Tensor]:
    """Feature maps [B, C, h, w] after the listed layers (1-based: ResNet stages, ViT blocks),
    in the order given; the network runs only as deep as the deepest one."""
    count = layer_count(model)
    if not count:
        raise ValueError(
            f"{type(model).__name__} exposes no intermediate feature maps (ResNet stages or ViT "
            "blocks): use --descriptor cls or cls+gem."
        )
    if not layers or min(layers) < 1 or max(layers) > count:
        raise ValueError(f"--layers {list(layers)}: this model has layers 1..{count}.")
    if hasattr(model, "get_intermediate_layers"):
        outs = model.get_intermediate_layers(images, [i - 1 for i in layers], reshape=True)
        by_block = dict(zip(sorted(set(layers)), outs, strict=True))
        return [by_block[i].float() for i in layers]
    stem, stages = _stem_and_stages(model)
    h, found = stem(images), {}
    for i, stage in enumerate(stages[: max(layers)], start=1):
        h = stage(h)
        found[i] = h
    return [found[i].float() for i in layers]


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
