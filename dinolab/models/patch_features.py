"""Patch-feature maps of any backbone: the one place dense evaluations and pictures read them.

A ViT gives its patch tokens after the final norm, of the last block or of several blocks
(concatenated along channels), optionally with its CLS token repeated at every patch (DINOv2's
depth probe). A convolutional backbone (ResNet, small_resnet, torchvision / timm conv nets)
gives its last feature map: one cell per `patch_size` pixels, its mean as the CLS token.
`layer_maps` reads earlier maps one by one (ResNet stages, ViT blocks), for descriptors that
need less invariant features than the last layer's (`curate.grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


def patch_size_of(backbone: nn.Module) -> int:
    """The backbone's patch (or output stride); one sentence when it has none."""
    patch = getattr(backbone, "patch_size", None)
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    if not isinstance(patch, int) or not hasattr(backbone, "forward_features"):
        raise ValueError(
            f"{type(backbone).__name__} gives no patch-token grid: dense evaluations need a ViT "
            "or a convolutional backbone from dinolab.load."
        )
    return patch


def evenly_spaced_blocks(depth: int, n: int) -> list[int]:
    """n block indices spread over a depth-block ViT, ending at the last (DINOv2's lin.4)."""
    if not 1 <= n <= depth:
        raise ValueError(f"cannot take {n} blocks of a {depth}-block backbone.")
    return sorted({round(depth - 1 - i * (depth - 1) / max(n - 1, 1)) for i in range(n)})


def block_count(backbone: nn.Module) -> int:
    """Blocks a caller may pick from: a ViT's depth, 1 for a network read at its last map."""
    return (
        int(getattr(backbone, "n_blocks", 0)) if hasattr(backbone, "get_intermediate_layers") else 1
    )


def _grid(tokens: Tensor, h: int, w: int, what: str) -> Tensor:
    """[B, N, D] tokens as a [B, D, h, w] map, or one sentence when N is not h * w."""
    if tokens.shape[1] != h * w:
        raise ValueError(f"{what} gave {tokens.shape[1]} patch tokens for a {h}x{w} grid.")
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)


def patch_feature_map(
    backbone: nn.Module,
    images: Tensor,
    blocks: int | Sequence[int] = 1,
    with_cls: bool = False,
) -> Tensor:
    """[B, C, h, w] float32 patch features of [B, 3, H, W] images (H, W multiples of the patch).

    `blocks`: an int n takes the last n blocks, a list the listed ones (ViTs only; any other
    backbone has just its last map, blocks=1). Each block gives D channels, or 2D with
    `with_cls` (patch token, then the CLS token of the same block).
    """
    patch = patch_size_of(backbone)
    h, w = images.shape[-2] // patch, images.shape[-1] // patch
    what = type(backbone).__name__
    if hasattr(backbone, "get_intermediate_layers"):
        outs = backbone.get_intermediate_layers(images, blocks, return_class_token=True)
        pairs = [(_grid(p, h, w, what), c) for p, c in outs]
    else:
        if blocks not in (1, [-1], (-1,)):
            raise ValueError(
                f"{what} has no intermediate blocks to read: use the last one (blocks=1)."
            )
        if hasattr(backbone, "feature_map"):
            fmap = backbone.feature_map(images)
            pairs = [(fmap, fmap.mean(dim=(2, 3)))]
        else:
            out = backbone.forward_features(images)
            pairs = [(_grid(out["x_norm_patchtokens"], h, w, what), out.get("x_norm_clstoken"))]
    parts = []
    for fmap, cls in pairs:
        parts.append(fmap.float())
        if with_cls:
            if cls is None:
                raise ValueError(f"{what} gives no CLS token to put beside its patches.")
            parts.append(cls.float()[:, :, None, None].expand(-1, -1, *fmap.shape[-2:]))
    return torch.cat(parts, dim=1)


def _stem_and_stages(model: nn.Module) -> tuple[Callable, list[nn.Module]] | None:
    """(stem, stages) of a dinolab ResNet (`small_resnet`, `resnet*`: both expose `stem` and
    their stages as `blocks`) or of a torchvision one (by its layer names), else None."""
    if callable(getattr(model, "stem", None)) and getattr(model, "blocks", None):
        return model.stem, list(model.blocks)
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
