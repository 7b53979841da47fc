"""A DAVIS folder read the way DINO's eval_video_segmentation.py reads it, and written back.

Layout: ROOT/JPEGImages/480p/<sequence>/*.jpg with ROOT/Annotations/480p/<sequence>/*.png
(`480p` may be absent). Annotations in palette mode ("P", DAVIS-2017) hold object indices with
255 as void; greyscale ones (DAVIS-2016: {0, 255}) hold one object, 255 -> 1.
Frames are resized as DINO does: shorter side to `size`, the longer side floored to a multiple
of 64 (of the patch when 64 is not one), bilinear without antialiasing (cv2.INTER_LINEAR).
Predictions are indexed PNGs with the DAVIS palette, built here (DINO downloads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dinolab.data.datasets import decode_image

VOID = 255


def davis_palette() -> np.ndarray:
    """[256, 3] uint8: the PASCAL VOC colour map that DAVIS annotations and results use."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        palette[i] = rgb
    return palette


def _media_dir(root: Path, kind: str) -> Path:
    base = root / kind
    return base / "480p" if (base / "480p").is_dir() else base


def list_sequences(root: str | Path, sequences: Sequence[str] | None = None) -> list[str]:
    """The sequence names under ROOT/JPEGImages[/480p] (all, sorted, or the ones asked for)."""
    root = Path(root).expanduser()
    frames = _media_dir(root, "JPEGImages")
    if not frames.is_dir():
        raise FileNotFoundError(
            f"No DAVIS folder at '{root}': it must hold JPEGImages/480p/<sequence>/ and "
            "Annotations/480p/<sequence>/."
        )
    found = sorted(p.name for p in frames.iterdir() if p.is_dir())
    if sequences:
        missing = [s for s in sequences if s not in found]
        if missing:
            raise ValueError(f"sequences {missing} are not in '{frames}' (it has {found[:5]}...).")
        return list(sequences)
    if not found:
        raise ValueError(f"'{frames}' holds no sequence folders.")
    return found


def sequence_files(root: str | Path, sequence: str) -> tuple[list[Path], list[Path | None]]:
    """(frame paths, annotation paths by frame, None where a frame has none); frame 0 must."""
    root = Path(root).expanduser()
    frames = sorted(_media_dir(root, "JPEGImages").joinpath(sequence).glob("*.jpg"))
    if not frames:
        raise ValueError(f"sequence '{sequence}' has no .jpg frames under '{root}'.")
    ann_dir = _media_dir(root, "Annotations") / sequence
    anns = [ann_dir / f"{p.stem}.png" for p in frames]
    anns = [a if a.is_file() else None for a in anns]
    if anns[0] is None:
        raise FileNotFoundError(
            f"No first-frame annotation '{ann_dir / frames[0].stem}.png': label propagation "
            "starts from it."
        )
    return frames, anns


def read_annotation(path: str | Path) -> np.ndarray:
    """Labels [H, W] uint8: palette PNGs as stored (255 = void), greyscale ones as one object."""
    with Image.open(path) as img:
        if img.mode == "P":
            return np.array(img, dtype=np.uint8)
        grey = np.asarray(img.convert("L"))
    return (grey > 127).astype(np.uint8)


def processing_size(
    height: int, width: int, size: int = 480, multiple: int = 64, patch: int = 16
) -> tuple[int, int]:
    """(H, W) a frame is fed at: DINO's read_frame rule, then both sides floored to the patch."""
    if multiple % patch:
        multiple = patch
    if height > width:
        h, w = int((size * height / width) // multiple * multiple), size
    else:
        h, w = size, int((size * width / height) // multiple * multiple)
    h, w = h // patch * patch, w // patch * patch
    if h < patch or w < patch:
        raise ValueError(f"size {size} gives a {h}x{w} frame: use a size of at least {multiple}.")
    return h, w


def load_frame(
    path: str | Path, size_hw: tuple[int, int], mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, np.ndarray]:
    """(normalised [3, H, W] float32 at size_hw, the original uint8 RGB [h, w, 3])."""
    rgb = np.array(decode_image(str(path)))
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255.0
    x = F.interpolate(x, size=size_hw, mode="bilinear", align_corners=False, antialias=False)[0]
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    return (x - m) / s, rgb


def seed_labels(labels: np.ndarray, grid_hw: tuple[int, int], n_classes: int) -> torch.Tensor:
    """First-frame one-hot [n_classes, h, w] on the patch grid (nearest resize, void -> 0)."""
    small = Image.fromarray(np.where(labels == VOID, 0, labels).astype(np.uint8))
    small = np.asarray(small.resize((grid_hw[1], grid_hw[0]), Image.NEAREST))
    one_hot = torch.from_numpy(small.astype(np.int64))
    return F.one_hot(one_hot, n_classes).permute(2, 0, 1).float()


def write_indexed_png(path: str | Path, labels: np.ndarray, palette: np.ndarray) -> None:
    """Save labels [H, W] as a palette PNG (what DAVIS tools read)."""
    img = Image.fromarray(np.asarray(labels, dtype=np.uint8))
    img.putpalette(palette.reshape(-1).tolist())  # an "L" image becomes "P" with this palette
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
