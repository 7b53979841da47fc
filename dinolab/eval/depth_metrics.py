"""Monocular-depth scores (Eigen et al. 2014), per image on valid pixels, then averaged.

Valid: ground truth in (min_depth, max_depth]; predictions clamped into [min_depth, max_depth]
first (as DINOv2's depth evaluation and the Monodepth toolbox do).
"""

from __future__ import annotations

import torch

KEYS = ("rmse", "abs_rel", "sq_rel", "rmse_log", "log10", "d1", "d2", "d3")


def depth_scores(
    pred: torch.Tensor, gt: torch.Tensor, min_depth: float = 1e-3, max_depth: float = 10.0
) -> dict | None:
    """The KEYS of one image's [H, W] prediction against its ground truth; None if no pixel
    is valid. d1..d3: fraction with max(pred / gt, gt / pred) < 1.25, 1.25^2, 1.25^3."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and depth {tuple(gt.shape)} differ.")
    valid = (gt > min_depth) & (gt <= max_depth)
    if not valid.any():
        return None
    p = pred[valid].double().clamp(min_depth, max_depth)
    g = gt[valid].double()
    ratio = torch.maximum(p / g, g / p)
    return {
        "rmse": float(((p - g) ** 2).mean().sqrt()),
        "abs_rel": float(((p - g).abs() / g).mean()),
        "sq_rel": float(((p - g) ** 2 / g).mean()),
        "rmse_log": float(((p.log() - g.log()) ** 2).mean().sqrt()),
        "log10": float((p.log10() - g.log10()).abs().mean()),
        "d1": float((ratio < 1.25).double().mean()),
        "d2": float((ratio < 1.25**2).double().mean()),
        "d3": float((ratio < 1.25**3).double().mean()),
    }


def mean_scores(per_image: list[dict | None]) -> dict:
    """The average of each key over the images that had valid pixels."""
    kept = [s for s in per_image if s is not None]
    if not kept:
        raise ValueError("No validation image has a valid depth pixel within the depth range.")
    return {k: sum(s[k] for s in kept) / len(kept) for k in KEYS} | {"images": len(kept)}
