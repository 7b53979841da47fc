"""Toy data for the curation tests: the five rings, separable blobs, a tiny image folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

RING_SIZES = (20000, 200, 1000, 500, 8000)


def five_rings(sizes=RING_SIZES, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Five 2-D rings (radius 1, noise 0.1) on a circle of radius 6; (points, ring labels)."""
    g = torch.Generator().manual_seed(seed)
    points, labels = [], []
    for r, n in enumerate(sizes):
        cx, cy = 6 * math.cos(2 * math.pi * r / 5), 6 * math.sin(2 * math.pi * r / 5)
        t = torch.rand(n, generator=g) * 2 * math.pi
        rad = 1 + 0.1 * torch.randn(n, generator=g)
        points.append(torch.stack([cx + rad * torch.cos(t), cy + rad * torch.sin(t)], 1))
        labels += [r] * n
    return torch.cat(points), torch.tensor(labels)


def blobs(k: int = 5, per: int = 100, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 10
    labels = torch.arange(k).repeat_interleave(per)
    return centres[labels] + torch.randn(k * per, dim, generator=g) * 0.3, labels


def image_folder(root: Path, n: int = 12, size: int = 16, seed: int = 0) -> list[Path]:
    """n distinct random PNGs under root (two subfolders)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = root / f"d{i % 2}" / f"img{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


class PixelNet(torch.nn.Module):
    """A tiny 'backbone': flattened pixels through one linear layer; can fail on cue."""

    def __init__(self, size: int = 16, dim: int = 8, fail_after: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * size * size, dim)
        self.calls = 0
        self.fail_after = fail_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("interrupted")
        return self.proj(x.flatten(1))
