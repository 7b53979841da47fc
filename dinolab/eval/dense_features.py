"""Patch-feature maps of every image of a dense set, at several scales and flips, cached.

An image is resized so its shorter side is `size * scale` (both sides then rounded to the
patch), optionally mirrored, and passed through the frozen backbone once; a map larger than
`window` pixels is read window by window (stride 2/3 of it) and the overlapping windows'
features are averaged per patch cell. The probes' heads are affine per cell, so this equals
averaging the windows' logits (mmseg's sliding inference) at patch resolution.
With `cache_dir`, every map is a `.npy` file of one entry folder, keyed like the
classification cache (backbone weights, files, sizes, blocks, normalisation, precision) and
published by an atomic rename; readers get memory-mapped arrays.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from dinolab.eval.cache import backbone_fingerprint, cache_key, files_fingerprint
from dinolab.eval.dense_data import normalise, read_image
from dinolab.hardware import autocast, resolve_precision
from dinolab.models.patch_features import patch_feature_map, patch_size_of

log = logging.getLogger("dinolab")
FORMAT = "dinolab-dense-features-v1"


def scaled_size(height: int, width: int, size: int, scale: float, patch: int) -> tuple[int, int]:
    """(H, W) with the shorter side near size * scale, both multiples of the patch."""
    ratio = size * scale / min(height, width)
    return (
        max(patch, round(height * ratio / patch) * patch),
        max(patch, round(width * ratio / patch) * patch),
    )


def window_starts(length: int, window: int, patch: int) -> list[int]:
    """Patch-aligned window origins covering [0, length), stride ~2/3 of the window."""
    if window <= 0 or length <= window:
        return [0]
    stride = max(patch, (2 * window // 3) // patch * patch)
    starts = list(range(0, length - window, stride))
    return [*starts, length - window]


@torch.no_grad()
def image_feature_map(
    backbone: nn.Module,
    pixels: torch.Tensor,
    blocks: int | Sequence[int] = 1,
    with_cls: bool = False,
    window: int = 0,
) -> torch.Tensor:
    """[C, h, w] features of one [3, H, W] image, by sliding windows when larger than `window`."""
    patch = patch_size_of(backbone)
    H, W = pixels.shape[-2:]
    win_h, win_w = min(window or H, H), min(window or W, W)
    total, count = None, torch.zeros(H // patch, W // patch, device=pixels.device)
    for y in window_starts(H, win_h, patch):
        for x in window_starts(W, win_w, patch):
            crop = pixels[None, :, y : y + win_h, x : x + win_w]
            fmap = patch_feature_map(backbone, crop, blocks, with_cls)[0]
            if total is None:
                total = torch.zeros(fmap.shape[0], *count.shape, device=pixels.device)
            cells = (
                slice(y // patch, (y + win_h) // patch),
                slice(x // patch, (x + win_w) // patch),
            )
            total[:, cells[0], cells[1]] += fmap
            count[cells] += 1
    return total / count


class DenseFeatures:
    """Feature maps by (image index, scale index, flipped): `get(i, s, flip)` -> [C, h, w]."""

    def __init__(self, maps: dict, scales: Sequence[float], flips: Sequence[bool]) -> None:
        self.maps, self.scales, self.flips = maps, list(scales), list(flips)

    def get(self, index: int, scale: int = 0, flip: bool = False) -> torch.Tensor:
        m = self.maps[(index, scale, flip)]
        if isinstance(m, Path):  # mapped once, then kept (the OS pages it in as read)
            m = self.maps[(index, scale, flip)] = torch.from_numpy(np.load(m, mmap_mode="c"))
        return m

    @property
    def dim(self) -> int:
        return int(self.get(0).shape[0])


def _name(i: int, s: int, flip: bool) -> str:
    return f"{i}_{s}_{int(flip)}.npy"


@torch.no_grad()
def extract_dense_features(
    backbone: nn.Module,
    images: Sequence[Path],
    size: int,
    *,
    scales: Sequence[float] = (1.0,),
    flips: Sequence[bool] = (False,),
    blocks: int | Sequence[int] = 1,
    with_cls: bool = False,
    window: int = 0,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> DenseFeatures:
    """The maps of every image at every (scale, flip), from / into `cache_dir` if given."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)[0]
    patch = patch_size_of(backbone)
    keys = [(i, s, f) for i in range(len(images)) for s in range(len(scales)) for f in flips]
    entry = None
    if cache_dir is not None:
        key = cache_key(
            {
                "what": FORMAT,
                "backbone": backbone_fingerprint(backbone),
                "files": files_fingerprint([str(p) for p in images], [0] * len(images)),
                "size": size,
                "scales": list(scales),
                "flips": list(flips),
                "blocks": blocks if isinstance(blocks, int) else list(blocks),
                "with_cls": with_cls,
                "window": window,
                "mean": list(mean),
                "std": list(std),
                "precision": precision,
            }
        )
        entry = Path(cache_dir) / key
        if (entry / "meta.json").is_file():
            log.info("dense features from cache %s", entry)
            return DenseFeatures({k: entry / _name(*k) for k in keys}, scales, flips)
    tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}") if entry is not None else None
    maps: dict = {}
    was_training = backbone.training
    backbone.to(device).eval()
    try:
        if tmp is not None:
            tmp.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(tqdm(images, desc="dense features", disable=not progress)):
            rgb = read_image(path)
            for s, scale in enumerate(scales):
                hw = scaled_size(rgb.shape[0], rgb.shape[1], size, scale, patch)
                resized = np.asarray(Image.fromarray(rgb).resize(hw[::-1], Image.BICUBIC))
                x = normalise(resized, mean, std).to(device)
                for flip in flips:
                    with autocast(device, precision):
                        fmap = image_feature_map(
                            backbone, x.flip(-1) if flip else x, blocks, with_cls, window
                        )
                    fmap = fmap.float().cpu()
                    if tmp is not None:
                        np.save(tmp / _name(i, s, flip), fmap.numpy())
                        maps[(i, s, flip)] = entry / _name(i, s, flip)
                    else:
                        maps[(i, s, flip)] = fmap
        if tmp is not None:
            (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "images": len(images)}))
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(tmp, entry)
    finally:
        backbone.train(was_training)
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return DenseFeatures(maps, scales, flips)


def unflip(x: torch.Tensor, flip: bool) -> torch.Tensor:
    """A map computed on a mirrored image, mirrored back (last axis)."""
    return x.flip(-1) if flip else x


def upsample(x: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B, C, h, w] to size_hw (align_corners=False, as mmseg)."""
    return F.interpolate(x, size=size_hw, mode="bilinear", align_corners=False)
