"""Folders of images with per-pixel targets: segmentation masks or depth maps, matched by name.

Segmentation: DIR/images/*.{jpg,png,...} and DIR/masks/<same stem>.png, masks as indexed (or
greyscale) PNGs of class indices, 255 = ignore; class names optionally in DIR/classes.json (a
list, index = class). Depth: DIR/images/ and DIR/depth/<stem>.png (16-bit, millimetres) or
<stem>.npy (float metres); 0 = no measurement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IGNORE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _images(root: Path) -> list[Path]:
    folder = root / "images"
    if not folder.is_dir():
        raise FileNotFoundError(f"No images/ folder under '{root}': put the photos in it.")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"'{folder}' holds no images.")
    return paths


def segmentation_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of DIR; a photo without its mask is a one-sentence error."""
    root = Path(root)
    pairs = []
    for img in _images(root):
        mask = root / "masks" / f"{img.stem}.png"
        if not mask.is_file():
            raise FileNotFoundError(
                f"No mask for '{img.name}': expected '{mask}' (an indexed PNG, 255 = ignore)."
            )
        pairs.append((img, mask))
    return pairs


def depth_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, depth) paths of DIR: depth/<stem>.npy (metres) or .png (16-bit millimetres)."""
    root = Path(root)
    pairs = []
    for img in _images(root):
        found = [root / "depth" / f"{img.stem}{s}" for s in (".npy", ".png")]
        found = [p for p in found if p.is_file()]
        if not found:
            raise FileNotFoundError(
                f"No depth map for '{img.name}': expected '{root / 'depth' / img.stem}.npy' "
                "(metres) or '.png' (16-bit millimetres)."
            )
        pairs.append((img, found[0]))
    return pairs


def class_names(roots: Sequence[str | Path], n_classes: int) -> list[str]:
    """Names from the first DIR/classes.json found, else "0", "1", ..."""
    for root in roots:
        path = Path(root) / "classes.json"
        if path.is_file():
            names = [str(n) for n in json.loads(path.read_text())]
            if len(names) < n_classes:
                raise ValueError(
                    f"'{path}' names {len(names)} classes but the masks use index "
                    f"{n_classes - 1}: list one name per class index."
                )
            return names
    return [str(i) for i in range(n_classes)]


def read_image(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_mask(path: Path, size_hw: tuple[int, int], n_classes: int | None = None) -> np.ndarray:
    """[H, W] uint8 class indices; checked against the image size and the class count."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(
                f"Mask '{path}' is a {im.mode} image: save class indices as an indexed (P) "
                "or greyscale (L) PNG."
            )
        mask = np.asarray(im)
    if mask.shape != tuple(size_hw):
        raise ValueError(
            f"Mask '{path}' is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{size_hw[1]}x{size_hw[0]}: masks must have their image's size."
        )
    if n_classes is not None:
        bad = np.unique(mask[(mask != IGNORE) & (mask >= n_classes)])
        if bad.size:
            raise ValueError(
                f"Mask '{path}' uses class index {int(bad[0])}, but there are {n_classes} "
                f"classes (0..{n_classes - 1}, 255 = ignore)."
            )
    return mask


def read_depth(path: Path, size_hw: tuple[int, int]) -> np.ndarray:
    """[H, W] float32 metres (0 = invalid), from .npy metres or 16-bit PNG millimetres."""
    if path.suffix == ".npy":
        depth = np.load(path).astype(np.float32)
    else:
        with Image.open(path) as im:
            depth = np.asarray(im).astype(np.float32) / 1000.0
    if depth.ndim != 2 or depth.shape != tuple(size_hw):
        raise ValueError(
            f"Depth map '{path}' has shape {depth.shape} but its image is {size_hw[0]}x"
            f"{size_hw[1]}: store one [H, W] map of the image's size."
        )
    return np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)


def count_classes(pairs: Sequence[tuple[Path, Path]]) -> int:
    """1 + the largest class index (255 excluded) over the masks of a training set."""
    top = -1
    for _, mask in pairs:
        with Image.open(mask) as im:
            m = np.asarray(im)
        valid = m[m != IGNORE]
        if valid.size:
            top = max(top, int(valid.max()))
    if top < 0:
        raise ValueError("Every training mask is all ignore (255): label some pixels.")
    return top + 1


def normalise(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """[3, H, W] float32 of an [H, W, 3] uint8 image."""
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
