"""Where the CLS token looks: self-attention maps of any block, per head and averaged.

DINO's emerging property is that the last block's CLS attention segments objects without
labels. Maps cover the patch tokens only: the CLS token's attention to itself and to the
register tokens (DINOv2 with registers) is kept apart in the outputs, not drawn.

    from dinolab.viz.attention import attention_maps, plot_attention
    maps = attention_maps("dinov2_vits14_reg", ["cat.jpg"], size=448)
    plot_attention(maps, "attention.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dinolab.hardware import autocast
from dinolab.viz.images import (
    HEAT_CMAP,
    HEAT_LABEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_vit,
    heat_over_dimmed,
    image_paths,
    load_image,
    pyplot,
    save_figure,
    short,
    upsample,
)


def _check_size(model: nn.Module, pixels: torch.Tensor) -> tuple[int, int]:
    p = model.patch_size
    h, w = pixels.shape[-2:]
    if h % p or w % p:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the patch size {p}: resize it to a "
            f"multiple of {p} (load_image does)."
        )
    return h // p, w // p


@torch.no_grad()
def cls_attention(model: nn.Module, pixels: torch.Tensor, block: int = -1) -> dict:
    """The CLS query's softmax attention of one block, split by what it attends to.

    Returns {"heads": [B, heads, h, w] over patches, "mean": [B, h, w] (head average),
    "cls": [B, heads] (to itself), "registers": [B, heads, R], "weights": [B, heads, N, N]}.
    For every head, heads + cls + registers add up to 1 (one softmax row).
    """
    vit = as_vit(model)
    gh, gw = _check_size(vit, pixels)
    weights = vit.get_selfattention(pixels, block).float()
    r = vit.num_register_tokens
    row = weights[:, :, 0]
    heads = row[:, :, 1 + r :].reshape(*row.shape[:2], gh, gw)
    return {
        "heads": heads,
        "mean": heads.mean(dim=1),
        "cls": row[:, :, 0],
        "registers": row[:, :, 1 : 1 + r],
        "weights": weights,
    }


def attention_maps(
    model: nn.Module | str | Path,
    images: Sequence[str | Path],
    size: int | None = 448,
    block: int = -1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> list[dict]:
    """Per image: {"name", "rgb" uint8 [H, W, 3], "grid" [heads, h, w] patch maps,
    "heads" [heads, H, W] and "mean" [H, W] upsampled to the image, "block" (for titles)}.

    `size` scales the shorter side (None keeps each image's size); both sides are then
    rounded to a multiple of the patch, so any image works.
    """
    vit = as_vit(model).to(device)
    out = []
    for path in image_paths(images):
        img = load_image(path, vit.patch_size, size, mean, std)
        with autocast(device, precision):  # the forward only: the maps are float32
            maps = cls_attention(vit, img["pixels"].to(device), block)
        grid = maps["heads"][0].cpu()
        hw = img["rgb"].shape[:2]
        out.append(
            {
                "name": img["name"],
                "rgb": img["rgb"],
                "grid": grid,
                "heads": upsample(grid, hw),
                "mean": upsample(grid.mean(0), hw),
                "block": f"{block % vit.n_blocks} of 0..{vit.n_blocks - 1}",
            }
        )
    return out


OUTLINE_COLOUR = "#00e5ff"  # cyan: stands out on the dimmed photo and on every inferno colour


def plot_attention(
    maps: list[dict],
    out: str | Path,
    keep_masks: list[torch.Tensor] | None = None,
    scores: list[dict] | None = None,
    max_cols: int = 8,
    keep: float | None = None,
) -> Path:
    """Write `attention_figure(...)` as a PNG at `out`."""
    return save_figure(attention_figure(maps, keep_masks, scores, max_cols, keep), out)


def attention_figure(
    maps: list[dict],
    keep_masks: list[torch.Tensor] | None = None,
    scores: list[dict] | None = None,
    max_cols: int = 8,
    keep: float | None = None,
):
    """Per image: the photo, the head average, then each head, as heat maps over the dimmed
    photo, with one colour bar (each map scaled to its peak).

    Rows wrap after `max_cols` panels (ViT-g has 24 heads). `keep_masks` ([heads, H, W] bool
    per image, from `dinolab.viz.masks`) are outlined, with a legend naming the `keep`
    fraction of the attention mass they hold; `scores` ({"heads": [...], "mean": j} per
    image) put the Jaccard in the titles. Returns the matplotlib figure.
    """
    import matplotlib
    from matplotlib.lines import Line2D

    plt = pyplot()
    n_heads = maps[0]["heads"].shape[0]
    cols = min(2 + n_heads, max_cols)
    per_image = -(-(2 + n_heads) // cols)
    rows = len(maps) * per_image
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, m in enumerate(maps):
        panels = [("image", None), ("mean of heads", m["mean"])]
        panels += [(f"head {h}", m["heads"][h]) for h in range(n_heads)]
        for j, (title, heat) in enumerate(panels):
            ax = axes[i * per_image + j // cols, j % cols]
            ax.imshow(m["rgb"] if heat is None else heat_over_dimmed(m["rgb"], heat.numpy()))
            if keep_masks is not None and j >= 2:
                mask = keep_masks[i][j - 2].numpy().astype(np.float32)
                ax.contour(mask, [0.5], colors=OUTLINE_COLOUR, linewidths=1.0)
            if scores is not None and j >= 1:
                jac = scores[i]["mean"] if j == 1 else scores[i]["heads"][j - 2]
                title = f"{title} J={jac:.2f}"
            ax.set_title(short(m["name"]) if j == 0 else title, fontsize=8)
    scale = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), HEAT_CMAP)
    bar = fig.colorbar(scale, ax=axes, fraction=0.02, pad=0.01, aspect=30)
    bar.set_label(HEAT_LABEL, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if keep_masks is not None:
        mass = f"{keep:.0%}" if keep else "the kept share"
        outline = Line2D(
            [],
            [],
            color=OUTLINE_COLOUR,
            linewidth=1.5,
            label=f"fewest patches holding {mass} of a head's attention mass",
        )
        fig.legend(handles=[outline], loc="lower center", fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    block = maps[0].get("block", "")
    fig.suptitle(f"CLS self-attention, block {block} (registers excluded)", fontsize=10)
    return fig
