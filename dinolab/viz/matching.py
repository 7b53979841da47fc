"""Patch matching across two images: mutual nearest neighbours of patch features.

DINOv2's patch features match the same part of an object across instances, poses and styles.
A pair (i, j) is kept only if patch j is i's nearest neighbour in image B (cosine) and i is
j's nearest neighbour in image A; optionally only foreground patches (first PCA component,
see `dinolab.viz.pca`) take part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dinolab.hardware import autocast
from dinolab.viz.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_vit,
    load_image,
    pyplot,
    save_figure,
    short,
)
from dinolab.viz.pca import patch_features, pca_rgb


def mutual_nearest_neighbours(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Mutual nearest neighbours of rows of a [Na, D] and b [Nb, D] under cosine similarity.

    Returns {"pairs": long [K, 2] (index in a, index in b), "similarity": [K]}, best first.
    """
    sim = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T
    a_to_b = sim.argmax(dim=1)
    b_to_a = sim.argmax(dim=0)
    ia = torch.arange(len(a))
    mutual = b_to_a[a_to_b] == ia
    pairs = torch.stack([ia[mutual], a_to_b[mutual]], dim=1)
    score = sim[pairs[:, 0], pairs[:, 1]]
    order = score.argsort(descending=True)
    return {"pairs": pairs[order], "similarity": score[order]}


def match_images(
    model: nn.Module | str | Path,
    image_a: str | Path,
    image_b: str | Path,
    size: int | None = 448,
    foreground: bool = True,
    block: int = -1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> dict:
    """Mutual-NN patch pairs of two image files.

    Returns {"pairs", "similarity", "points_a", "points_b" (patch centres [K, 2] as x, y
    pixels), "images", "names"}.
    """
    vit = as_vit(model).to(device)
    imgs = [load_image(p, vit.patch_size, size, mean, std) for p in (image_a, image_b)]
    with autocast(device, precision):  # the forward only: matching runs in float32
        feats = [patch_features(vit, img["pixels"].to(device), block) for img in imgs]
    keep = [torch.ones(f.shape[:2], dtype=torch.bool) for f in feats]
    if foreground:
        keep = pca_rgb(feats)["foreground"]
    idx = [k.flatten().nonzero()[:, 0] for k in keep]
    flat = [f.reshape(-1, f.shape[-1])[i] for f, i in zip(feats, idx, strict=True)]
    match = mutual_nearest_neighbours(*flat)
    p = vit.patch_size
    points = []
    for side, (f, i) in enumerate(zip(feats, idx, strict=True)):
        cell = i[match["pairs"][:, side]]
        w = f.shape[1]
        points.append(torch.stack([(cell % w) * p + p / 2, (cell // w) * p + p / 2], dim=1))
    return {
        **match,
        "points_a": points[0],
        "points_b": points[1],
        "images": [img["rgb"] for img in imgs],
        "names": [img["name"] for img in imgs],
    }


def plot_matches(result: dict, out: str | Path, max_lines: int = 50) -> Path:
    """The two images side by side with lines between the `max_lines` most similar pairs."""
    plt = pyplot()
    a, b = result["images"]
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h, a.shape[1] + b.shape[1], 3), dtype=np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    scale = 5.0 / canvas.shape[0]  # 5 inches tall whatever the image size
    fig, ax = plt.subplots(figsize=(canvas.shape[1] * scale, 5.0))
    ax.imshow(canvas)
    n = min(max_lines, len(result["pairs"]))
    colours = plt.get_cmap("hsv")(np.linspace(0, 1, max(n, 1), endpoint=False))
    for k in range(n):
        (xa, ya), (xb, yb) = result["points_a"][k].tolist(), result["points_b"][k].tolist()
        ax.plot([xa, xb + a.shape[1]], [ya, yb], color=colours[k], linewidth=1.0)
        ax.scatter([xa, xb + a.shape[1]], [ya, yb], color=colours[k], s=8)
    names = " vs ".join(short(n) for n in result["names"])
    ax.set_title(f"{names}: {n} of {len(result['pairs'])} mutual nearest neighbours", fontsize=9)
    ax.axis("off")
    return save_figure(fig, out)
