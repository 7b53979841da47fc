"""Tiny dense sets whose pixels encode their targets, and a backbone that reads them exactly."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from PIL import Image

from dinolab.models.resnet import FeatureMapBackbone

COLOURS = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220]], dtype=np.uint8)


class PatchMean(FeatureMapBackbone):
    """Features = the mean colour of each 8 px patch: linear in whatever the colours encode."""

    patch_size = 8
    embed_dim = 3

    def feature_map(self, x):
        return F.avg_pool2d(x, self.patch_size)


def make_segmentation_set(root, n=4, size=32, seed=0, classes=3, ignore_cell=True):
    """images/ + masks/: a grid of 16 px cells, each a class's colour (+ noise); one 8 px
    corner 255 (ignore)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    cells = size // 16
    for i in range(n):
        labels = rng.integers(0, classes, (cells, cells))
        labels[0, 0] = i % classes  # every class in every set of >= `classes` images
        mask = np.kron(labels, np.ones((16, 16), dtype=np.int64)).astype(np.uint8)
        noise = rng.integers(-20, 20, (size, size, 3))
        img = np.clip(COLOURS[mask].astype(int) + noise, 0, 255).astype(np.uint8)
        if ignore_cell:
            mask[-8:, -8:] = 255
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"im{i}.png")
    return root


def make_depth_set(root, n=4, size=32, seed=0, max_depth=10.0, png=False):
    """images/ + depth/: depth ramps across the image; brightness linear in depth."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    for i in range(n):
        a, b = rng.uniform(-1, 1, 2)
        ramp = (a * xx + b * yy - min(0, a) - min(0, b)) / (abs(a) + abs(b))  # in [0, 1]
        depth = (1.0 + 0.6 * (max_depth - 1.0) * ramp).astype(np.float32)
        grey = (40 + 180 * (depth - 1.0) / (max_depth - 1.0)).astype(np.uint8)
        Image.fromarray(np.stack([grey] * 3, -1)).save(root / "images" / f"im{i}.png")
        if png:
            Image.fromarray((depth * 1000).astype(np.uint16)).save(root / "depth" / f"im{i}.png")
        else:
            np.save(root / "depth" / f"im{i}.npy", depth)
    return root
