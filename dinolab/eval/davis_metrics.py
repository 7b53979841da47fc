"""DAVIS semi-supervised scores: region similarity J, boundary F-measure, and their statistics.

Computed as the official davis2017-evaluation code does (davis2017/metrics.py, utils.py,
evaluation.py), so the numbers compare with published ones:
  J  intersection over union of the object masks (void pixels left out when given; 1 when the
     union is empty);
  F  precision / recall of the 1-px boundary maps (`boundary_map`, D. Martin's seg2bmap), a
     boundary pixel matching when the other boundary is within ceil(0.008 x image diagonal)
     pixels (a disk);
  per object over frames 1 .. n-2 (the first frame is given, the last one is left out):
     mean, recall (fraction of frames above 0.5) and decay (mean of the first quarter of the
     frames minus mean of the last quarter); overall means are over all objects of all
     sequences, J&F = (J + F) / 2. The official semi-supervised scorer passes no void mask, and
     `score_sequence` does the same.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BOUND_TH = 0.008


def region_similarity(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """J: |gt & pred| / |gt | pred| over non-void pixels of two [H, W] masks; 1 if both empty."""
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {gt.shape} vs {pred.shape}.")
    keep = np.ones_like(gt) if void is None else ~np.asarray(void, bool)
    union = np.count_nonzero((gt | pred) & keep)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred & keep) / union


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """1-px boundaries of a [H, W] mask: pixels that differ from their east, south or
    south-east neighbour (offset half a pixel towards the origin), as seg2bmap draws them."""
    seg = np.asarray(seg, bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """The bool disk of skimage.morphology.disk: x^2 + y^2 <= r^2 on a (2r+1)^2 grid."""
    r = np.arange(-radius, radius + 1)
    return r[None, :] ** 2 + r[:, None] ** 2 <= radius**2


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a [H, W] mask by `disk(radius)` (pixels outside the image are off)."""
    kernel = torch.from_numpy(disk(radius).astype(np.float32))[None, None]
    x = torch.from_numpy(np.asarray(mask, np.float32))[None, None]
    return (F.conv2d(x, kernel, padding=radius)[0, 0] > 0.5).numpy()


def boundary_tolerance(shape: tuple[int, ...], bound_th: float = BOUND_TH) -> int:
    """The matching distance in pixels: bound_th itself if >= 1, else ceil(bound_th x diagonal)."""
    return int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape[:2])))


def boundary_f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """F: harmonic mean of boundary precision (pred boundary near gt's) and recall (gt's near
    pred's), within `boundary_tolerance`; void pixels are cleared from both masks first."""
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {gt.shape} vs {pred.shape}.")
    if void is not None:
        gt, pred = gt & ~np.asarray(void, bool), pred & ~np.asarray(void, bool)
    radius = boundary_tolerance(pred.shape, bound_th)
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 or n_gt == 0:  # official: P=1,R=0 / P=0,R=1 -> F=0; both empty -> F=1
        return 1.0 if n_pred == n_gt else 0.0
    precision = np.count_nonzero(pred_b & dilate(gt_b, radius)) / n_pred
    recall = np.count_nonzero(gt_b & dilate(pred_b, radius)) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def statistics(values: np.ndarray) -> dict[str, float]:
    """Mean, recall (share > 0.5) and decay (first-quarter mean - last-quarter mean) of a
    per-frame series, with the official bin edges."""
    v = np.asarray(values, dtype=np.float64)
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return {
        "mean": float(np.nanmean(v)),
        "recall": float(np.nanmean(v > 0.5)),
        "decay": float(np.nanmean(bins[0]) - np.nanmean(bins[3])),
    }


def score_sequence(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> dict:
    """Per-object J and F of a sequence of label maps [T, H, W] (objects 1..K of frame 0 of gt;
    255 in gt is void, counted as background as the official semi-supervised scorer does).

    Frames 1 .. T-2 are scored. Returns {object id: {"J": per-frame list, "F": ...,
    "J_stats": statistics, "F_stats": ...}}.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"predictions {pred.shape} and annotations {gt.shape} differ in shape.")
    if len(gt) < 3:
        raise ValueError(f"a sequence needs at least 3 frames to score (has {len(gt)}).")
    labels = np.where(gt == 255, 0, gt)
    n_objects = int(labels[0].max())
    scored = range(1, len(gt) - 1)
    out = {}
    for obj in range(1, n_objects + 1):
        pairs = [(labels[t] == obj, pred[t] == obj) for t in scored]
        j = [region_similarity(g, p) for g, p in pairs]
        f = [boundary_f_measure(g, p, bound_th=bound_th) for g, p in pairs]
        out[obj] = {"J": j, "F": f, "J_stats": statistics(j), "F_stats": statistics(f)}
    return out


def summarise(per_sequence: dict[str, dict]) -> dict[str, float]:
    """J&F-Mean and J / F Mean, Recall, Decay averaged over every object of every sequence."""
    objects = [o for seq in per_sequence.values() for o in seq.values()]
    if not objects:
        raise ValueError("no objects were scored: the first annotations hold no object.")
    out = {}
    for m in ("J", "F"):
        for stat in ("mean", "recall", "decay"):
            values = [o[f"{m}_stats"][stat] for o in objects]
            out[f"{m}-{stat.capitalize()}"] = float(np.mean(values))
    out["J&F-Mean"] = (out["J-Mean"] + out["F-Mean"]) / 2
    return out
