"""The dense probes' pictures: one row per image, its photo, ground truth and prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dinolab.viz.images import pyplot, save_figure


def dense_figure(rows: list[dict], out: str | Path, title: str = "") -> Path:
    """rows: {"name", "panels": [(caption, [H, W, 3] uint8 | [H, W] float, cmap | None)]}.

    Float panels (depth) of one row share the colour range of its first float panel (the
    ground truth), so prediction and truth read on one scale.
    """
    plt = pyplot()
    n_cols = max(len(r["panels"]) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.8 * n_cols, 2.6 * len(rows)),
                             squeeze=False)  # fmt: skip
    for i, row in enumerate(rows):
        floats = [p[1] for p in row["panels"] if p[1].ndim == 2]
        lo, hi = (0.0, 1.0)
        if floats:
            ref = floats[0][floats[0] > 0]
            lo, hi = (float(ref.min()), float(ref.max())) if ref.size else (0.0, 1.0)
        for j, (caption, image, cmap) in enumerate(row["panels"]):
            ax = axes[i, j]
            if image.ndim == 2:
                ax.imshow(np.asarray(image), cmap=cmap or "magma_r", vmin=lo, vmax=hi)
            else:
                ax.imshow(image)
            ax.set_title(f"{row['name']}: {caption}" if j == 0 else caption, fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def colour_labels(labels: np.ndarray, palette: np.ndarray, ignore: int = 255) -> np.ndarray:
    """[H, W, 3] uint8 of class indices through a [256, 3] palette; ignore pixels white."""
    rgb = palette[labels]
    rgb[labels == ignore] = 255
    return rgb
