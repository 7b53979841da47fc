"""Frames with their propagated masks: one row per video, a few frames across it.

The picture `dinolab eval davis` leaves beside its scores, to see at a glance where a mask
followed its object and where it leaked or was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dinolab.viz.images import pyplot, save_figure


def mask_overlay(
    rgb: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """uint8 [H, W, 3]: each object's palette hue (at full value) blended in, its outline opaque."""
    labels = np.asarray(labels)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels {labels.shape} and image {rgb.shape[:2]} differ in size.")
    colour = palette[labels].astype(np.float64)  # DAVIS colours are dark: shown at full value
    colour *= 255.0 / np.maximum(colour.max(axis=-1, keepdims=True), 1.0)
    out = rgb.astype(np.float64)
    fg = labels > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colour[fg]
    pad = np.pad(labels, 1, mode="edge")
    near = (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:])
    edge = fg & np.logical_or.reduce([n != labels for n in near])
    out[edge] = colour[edge]
    return np.clip(out, 0, 255).astype(np.uint8)


def propagation_figure(
    videos: Sequence[dict], palette: np.ndarray, out: str | Path, title: str = ""
) -> Path:
    """Write a grid PNG: row = video ({"name", "frames": [(index, rgb, labels), ...]})."""
    if not videos:
        raise ValueError("no videos to draw.")
    plt = pyplot()
    cols = max(len(v["frames"]) for v in videos)
    h, w = videos[0]["frames"][0][1].shape[:2]
    size = (cols * 3.2, len(videos) * 3.2 * h / w + 0.4)
    fig, axes = plt.subplots(len(videos), cols, figsize=size, squeeze=False)
    for row, video in zip(axes, videos, strict=True):
        for ax, frame in zip(row, [*video["frames"], *[None] * cols], strict=False):
            ax.axis("off")
            if frame is None:
                continue
            index, rgb, labels = frame
            ax.imshow(mask_overlay(rgb, labels, palette))
            ax.set_title(f"{video['name']} #{index}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)
