"""Attention maps to masks, and masks to Jaccard scores against ground truth.

As in DINO (Caron et al. 2021, the supervised-vs-DINO comparison), a head's mask keeps the
patches that hold the top `keep` fraction (60%) of its attention mass; a map is judged by the
Jaccard index (intersection over union) of that mask with a ground-truth object mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dinolab.viz.images import upsample

MASK_SUFFIXES = (".png", ".bmp", ".gif", ".jpg", ".jpeg", ".tif", ".tiff")


def mass_mask(maps: torch.Tensor, keep: float = 0.6) -> torch.Tensor:
    """Bool masks [..., h, w]: the fewest highest-attention patches holding >= `keep` of the mass.

    The patch that crosses the threshold is kept, so the kept mass is at least `keep`.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep={keep} must be a fraction in (0, 1], e.g. 0.6 for 60%.")
    flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1]).float()
    val, idx = flat.sort(dim=-1, descending=True)
    frac = val.cumsum(-1) / val.sum(-1, keepdim=True).clamp_min(1e-12)
    # keep everything up to and including the first patch whose cumulative mass reaches keep
    before = torch.cat([torch.zeros_like(frac[:, :1]), frac[:, :-1]], -1)
    kept_sorted = before < keep - 1e-6
    mask = torch.zeros_like(kept_sorted).scatter(-1, idx, kept_sorted)
    return mask.reshape(maps.shape)


def jaccard(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    """|pred & target| / |pred | target| of two bool masks of one shape (1.0 if both empty)."""
    p, t = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}; resize one to the other.")
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def load_masks(folder: str | Path, names: Sequence[str], sizes: Sequence[tuple[int, int]]):
    """Ground-truth bool masks [H, W] for images named `names` (matched by file stem).

    A pixel is foreground when its grey value is above half; each mask is resized (nearest)
    to its image's size.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No mask folder at '{folder}': check the path.")
    files = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES}
    missing = [n for n in names if n not in files]
    if missing:
        raise ValueError(
            f"mask folder '{folder}' has no mask for {', '.join(missing)}: name each mask like "
            "its image (cat.jpg -> cat.png)."
        )
    out = []
    for name, (h, w) in zip(names, sizes, strict=True):
        with Image.open(files[name]) as m:
            grey = m.convert("L").resize((w, h), Image.NEAREST)
        out.append(torch.from_numpy(np.asarray(grey) > 127))
    return out


def attention_masks(maps: list[dict], keep: float = 0.6) -> list[torch.Tensor]:
    """Per image (from `attention_maps`): bool [heads, H, W], the kept-mass mask of each head."""
    return [upsample(mass_mask(m["grid"], keep).float(), m["rgb"].shape[:2]) > 0.5 for m in maps]


def mask_scores(maps: list[dict], gt: list[torch.Tensor], keep: float = 0.6) -> list[dict]:
    """Per image: {"name", "heads": Jaccard of each head's mask, "mean": of the head-average
    map's mask, "best_head"}, against the ground-truth masks `gt`."""
    scores = []
    for m, kept, target in zip(maps, attention_masks(maps, keep), gt, strict=True):
        mean_grid = mass_mask(m["grid"].mean(0), keep).float()
        mean_mask = upsample(mean_grid, m["rgb"].shape[:2]) > 0.5
        heads = [jaccard(k, target) for k in kept]
        scores.append(
            {
                "name": m["name"],
                "heads": heads,
                "mean": jaccard(mean_mask, target),
                "best_head": int(np.argmax(heads)),
            }
        )
    return scores
