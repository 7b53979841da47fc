"""PCA of patch features, as in DINOv2's figure (Oquab et al. 2023, section 7.2).

Over all patches of a set of images jointly: the first principal component, thresholded,
separates foreground from background; a second PCA over the foreground patches alone gives
three components mapped to red, green and blue, so that matching parts of different images
take the same colour. The background is drawn black.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dinolab.hardware import autocast
from dinolab.models.patch_features import patch_feature_map
from dinolab.models.vision_transformer import VisionTransformer
from dinolab.viz.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_vit,
    image_paths,
    load_image,
    pyplot,
    save_figure,
    short,
    upsample,
)

log = logging.getLogger("dinolab")


def as_patch_model(model: nn.Module | str | Path) -> nn.Module:
    """The eval-mode backbone whose patches PCA reads: a ViT (tokens) or a convolutional
    backbone with a `feature_map` (ResNet, small_resnet: one cell per `patch_size` pixels)."""
    if not isinstance(model, nn.Module):
        from dinolab.hub import load

        model = load(model)
    backbone = getattr(model, "backbone", model)
    if hasattr(backbone, "feature_map") and hasattr(backbone, "patch_size"):
        return backbone.eval()
    return as_vit(backbone)


@torch.no_grad()
def patch_features(model: nn.Module, pixels: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Patch features [h, w, D] of one image [1, 3, H, W]: a ViT's final-normed tokens after
    `block`, or a convolutional backbone's last feature map (`block` must be -1 there)."""
    backbone = as_patch_model(model)
    if not isinstance(backbone, VisionTransformer) and block != -1:
        raise ValueError("block selects a ViT block; a convolutional backbone has only -1.")
    return patch_feature_map(backbone, pixels, [block])[0].permute(1, 2, 0).cpu()


def _project(x: torch.Tensor, k: int) -> torch.Tensor:
    """Coordinates [M, k] of the rows of x on their first k principal directions."""
    x = x - x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return x @ vh[:k].T


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def otsu(values: torch.Tensor, bins: int = 64) -> float:
    """The threshold that best splits values in [0, 1] into two classes (Otsu's method)."""
    hist = torch.histc(values.float(), bins=bins, min=0.0, max=1.0).double()
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    w0 = hist.cumsum(0)
    m0 = (hist * centres).cumsum(0)
    w1, m1 = w0[-1] - w0, m0[-1] - m0
    between = w0 * w1 * (m0 / w0.clamp_min(1e-12) - m1 / w1.clamp_min(1e-12)) ** 2
    return float(centres[int(between[:-1].argmax())] + 0.5 / bins)


def _border(h: int, w: int) -> torch.Tensor:
    b = torch.zeros(h, w, dtype=torch.bool)
    b[0], b[-1], b[:, 0], b[:, -1] = True, True, True, True
    return b.flatten()


def pca_rgb(
    features: Sequence[torch.Tensor], threshold: float | None = None, per_image: bool = False
) -> dict:
    """Joint PCA of patch features [h_i, w_i, D] of several images.

    Returns {"first": [h, w] in [0, 1] per image (foreground high), "foreground": bool [h, w],
    "rgb": [h, w, 3] in [0, 1] (background 0), "thresholds" (one per image)}. The first
    component's sign is chosen so that border patches (mostly background in photos) score
    low; `threshold` (on the [0, 1]-scaled component) defaults to Otsu's, over all images or,
    with `per_image` (images of different scenes, weaker models), over each image's patches.
    """
    shapes = [f.shape[:2] for f in features]
    flat = torch.cat([f.reshape(-1, f.shape[-1]).float() for f in features])
    first = _project(flat, 1)[:, 0]
    border = torch.cat([_border(h, w) for h, w in shapes])
    if (~border).any() and first[border].mean() > first[~border].mean():
        first = -first
    first = _minmax(first)
    sizes = [h * w for h, w in shapes]
    if threshold is not None:
        ts = [float(threshold)] * len(shapes)
    elif per_image:
        ts = [otsu(_minmax(c)) * (c.max() - c.min()) + c.min() for c in first.split(sizes)]
        ts = [float(t) for t in ts]
    else:
        ts = [otsu(first)] * len(shapes)
    fg = first > torch.cat([torch.full((n,), t) for n, t in zip(sizes, ts, strict=True)])
    if fg.sum() < 4:
        log.warning("only %d foreground patches: using all patches", int(fg.sum()))
        fg = torch.ones_like(fg)
    rgb = torch.zeros(len(flat), 3)
    rgb[fg] = _minmax(_project(flat[fg], 3))
    split = zip(first.split(sizes), fg.split(sizes), rgb.split(sizes), shapes, strict=True)
    out: dict = {"first": [], "foreground": [], "rgb": [], "thresholds": ts}
    for c1, f, c, (h, w) in split:
        out["first"].append(c1.reshape(h, w))
        out["foreground"].append(f.reshape(h, w))
        out["rgb"].append(c.reshape(h, w, 3))
    return out


def pca_maps(
    model: nn.Module | str | Path,
    images: Sequence[str | Path],
    size: int | None = 448,
    threshold: float | None = None,
    per_image: bool = False,
    block: int = -1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> dict:
    """`pca_rgb` of the patch features of image files, plus their "names" and "images"."""
    backbone = as_patch_model(model).to(device)
    loaded = [load_image(p, backbone.patch_size, size, mean, std) for p in image_paths(images)]
    with autocast(device, precision):  # the forward only: the PCA runs in float32
        feats = [patch_features(backbone, img["pixels"].to(device), block) for img in loaded]
    out = pca_rgb(feats, threshold, per_image)
    out["names"] = [img["name"] for img in loaded]
    out["images"] = [img["rgb"] for img in loaded]
    return out


def plot_pca(result: dict, out: str | Path) -> Path:
    """Columns: images; rows: the photo, the first component, the foreground components as RGB."""
    plt = pyplot()
    n = len(result["images"])
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.2), squeeze=False)
    for j in range(n):
        hw = result["images"][j].shape[:2]
        first = upsample(result["first"][j], hw).numpy()
        rgb = upsample(result["rgb"][j].permute(2, 0, 1), hw).permute(1, 2, 0).numpy()
        axes[0, j].imshow(result["images"][j])
        axes[0, j].set_title(short(result["names"][j]), fontsize=8)
        axes[1, j].imshow(first, cmap="viridis", vmin=0, vmax=1)
        t = result["thresholds"][j]
        axes[1, j].contour(first > t, [0.5], colors="w", linewidths=0.8)
        axes[1, j].set_title(f"1st component, fg > {t:.2f}", fontsize=8)
        axes[2, j].imshow(np.clip(rgb, 0, 1))
        for ax in axes[:, j]:
            ax.axis("off")
    axes[2, 0].set_title("foreground PCA 1-3 as RGB", fontsize=8)
    return save_figure(fig, out)
