"""Semantic-segmentation scores from one confusion histogram accumulated over a whole set.

mIoU as mmseg computes it: per class, intersection / union of the pixels summed over every
image (not averaged per image), then the mean over the classes present (union > 0: in the
ground truth or the prediction); ignore pixels (255) count nowhere.
"""

from __future__ import annotations

import numpy as np
import torch

from dinolab.eval.dense_data import IGNORE


class ConfusionHistogram:
    """hist[t, p]: pixels of true class t predicted as p, over every `add`ed image."""

    def __init__(self, n_classes: int) -> None:
        self.n = n_classes
        self.hist = torch.zeros(n_classes, n_classes, dtype=torch.int64)

    def add(self, pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray) -> None:
        pred, gt = torch.as_tensor(np.array(pred)).long(), torch.as_tensor(np.array(gt)).long()
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(gt.shape)} differ.")
        keep = gt != IGNORE
        idx = gt[keep] * self.n + pred[keep]
        self.hist += torch.bincount(idx, minlength=self.n * self.n).reshape(self.n, self.n)

    def scores(self) -> dict:
        """{"mIoU", "pixel_accuracy", "mean_accuracy", "per_class_iou" (None = absent)}."""
        h = self.hist.double()
        inter = h.diag()
        gt_px, pred_px = h.sum(1), h.sum(0)
        union = gt_px + pred_px - inter
        present = union > 0
        iou = torch.where(present, inter / union.clamp_min(1), torch.nan)
        acc = torch.where(gt_px > 0, inter / gt_px.clamp_min(1), torch.nan)
        total = h.sum()
        return {
            "mIoU": float(iou[present].mean()) if present.any() else float("nan"),
            "pixel_accuracy": float(inter.sum() / total) if total > 0 else float("nan"),
            "mean_accuracy": float(acc[gt_px > 0].mean()) if (gt_px > 0).any() else float("nan"),
            "per_class_iou": [
                None if not p else float(v) for v, p in zip(iou, present, strict=True)
            ],
        }
