"""`dinolab eval segment`: linear semantic segmentation on frozen patch features (DINOv2's
"lin." and "+ms" protocols, section 7.4 of Oquab et al. 2023).

lin.: last-block patch tokens (after the final norm); +ms: the last 4 blocks concatenated
(a ViT; other backbones have one map) and test-time scales {1, 1.32, 1.73, 2.28, 3} with flips,
sliding windows for large images. Head: Dropout2d(0.1) -> BatchNorm -> 1x1 conv, logits
bilinearly upsampled to the labels, cross-entropy ignoring 255, AdamW with warm-up + cosine,
trained on random crops of features cached at scales 0.5-2 and flips (`dense_probe`).
OUT gets segment.json / .md (mIoU, pixel accuracy, per-class IoU) and segment.png.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dinolab.eval import dense_data as data
from dinolab.eval.dense_features import extract_dense_features, unflip, upsample
from dinolab.eval.dense_probe import CropSampler, cached_targets, train_head
from dinolab.eval.results import markdown_table, write_results
from dinolab.eval.segmentation_metrics import ConfusionHistogram
from dinolab.models.patch_features import block_count, patch_size_of

log = logging.getLogger("dinolab")
MS_SCALES = (1.0, 1.32, 1.73, 2.28, 3.0)
TRAIN_SCALES = (0.5, 1.0, 1.5, 2.0)
FIGURE_IMAGES = 4


class LinearSegHead(nn.Module):
    """Dropout2d(0.1) -> BatchNorm2d -> 1x1 conv (weights N(0, 0.01), bias 0), per patch."""

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(0.1)
        self.bn = nn.BatchNorm2d(in_dim)
        self.conv = nn.Conv2d(in_dim, n_classes, 1)
        nn.init.normal_(self.conv.weight, 0.0, 0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(self.dropout(x)))


def seg_loss(logits: torch.Tensor, labels: torch.Tensor, step: int = 0) -> torch.Tensor:
    """Cross-entropy of logits upsampled to the labels' size, 255 ignored."""
    up = upsample(logits, tuple(labels.shape[-2:]))
    if not (labels != data.IGNORE).any():
        return up.sum() * 0.0
    return F.cross_entropy(up, labels.long(), ignore_index=data.IGNORE)


@torch.no_grad()
def predict(head: nn.Module, features, index: int, size_hw: tuple[int, int]) -> torch.Tensor:
    """[K, H, W] class probabilities of one image: softmax of the upsampled logits averaged
    over every cached (scale, flip)."""
    total = None
    for s in range(len(features.scales)):
        for flip in features.flips:
            logits = unflip(head(features.get(index, s, flip)[None]), flip)
            probs = upsample(logits, size_hw)[0].softmax(0)
            total = probs if total is None else total + probs
    return total / (len(features.scales) * len(features.flips))


def run_segmentation(
    backbone: nn.Module,
    train_root: str | Path,
    val_root: str | Path,
    out_dir: str | Path | None = None,
    *,
    mode: str = "lin",
    size: int = 224,
    crop: int | None = None,
    train_scales: Sequence[float] = TRAIN_SCALES,
    steps: int = 1000,
    batch: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-3,
    seed: int = 0,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train the head on train_root, score it on val_root; results (and the PNG) in out_dir.

    size: shorter side (px) at scale 1; crop: training crop and sliding window (px,
    default `size`).
    """
    if mode not in ("lin", "ms"):
        raise ValueError(f"mode '{mode}' is unknown: use lin or ms.")
    patch = patch_size_of(backbone)
    crop = crop or size
    crop_cells = max(1, crop // patch)
    blocks = 1 if mode == "lin" else min(4, block_count(backbone))
    train_pairs, val_pairs = data.segmentation_pairs(train_root), data.segmentation_pairs(val_root)
    n_classes = data.count_classes(train_pairs)
    classes = data.class_names([train_root, val_root], n_classes)
    common = dict(size=size, blocks=blocks, mean=mean, std=std, device=device,
                  precision=precision, cache_dir=cache_dir, progress=progress)  # fmt: skip
    t0 = time.perf_counter()
    train_feats = extract_dense_features(
        backbone, [p for p, _ in train_pairs], scales=train_scales, flips=(False, True), **common
    )
    eval_scales, eval_flips = ((1.0,), (False,)) if mode == "lin" else (MS_SCALES, (False, True))
    val_feats = extract_dense_features(backbone, [p for p, _ in val_pairs], scales=eval_scales,
                                       flips=eval_flips, window=crop if mode == "ms" else 0,
                                       **common)  # fmt: skip
    t_features = time.perf_counter() - t0

    masks = [data.read_mask(m, data.read_image(i).shape[:2], n_classes) for i, m in train_pairs]
    target_of = cached_targets(masks, train_feats, patch, torch.uint8)

    head = LinearSegHead(train_feats.dim, n_classes)
    sampler = CropSampler(train_feats, target_of, len(train_pairs), crop_cells, patch,
                          data.IGNORE, seed)  # fmt: skip
    t0 = time.perf_counter()
    losses = train_head(head, sampler, seg_loss, steps=steps, batch=batch, lr=lr,
                        weight_decay=weight_decay, warmup=min(100, steps // 10), seed=seed,
                        progress=progress, desc="segmentation head")  # fmt: skip
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    hist, drawn = ConfusionHistogram(n_classes), []
    for j, (img, mask_path) in enumerate(val_pairs):
        rgb = data.read_image(img)
        gt = data.read_mask(mask_path, rgb.shape[:2], n_classes)
        pred = predict(head, val_feats, j, gt.shape).argmax(0).numpy().astype(np.uint8)
        hist.add(pred, gt)
        if len(drawn) < FIGURE_IMAGES:
            drawn.append((img.stem, rgb, gt, pred))
    t_eval = time.perf_counter() - t0
    scores = hist.scores()
    result = {
        "protocol": "segment",
        "mode": mode,
        "train": str(train_root),
        "val": str(val_root),
        "classes": classes,
        "scores": {k: v for k, v in scores.items() if k != "per_class_iou"},
        "per_class_iou": dict(zip(classes, scores["per_class_iou"], strict=True)),
        "params": {
            "size": size,
            "crop": crop,
            "blocks": blocks,
            "feature_dim": train_feats.dim,
            "train_scales": list(train_scales),
            "eval_scales": list(eval_scales),
            "flip": len(eval_flips) > 1,
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "weight_decay": weight_decay,
            "seed": seed,
        },  # fmt: skip
        "images": {"train": len(train_pairs), "val": len(val_pairs)},
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "seconds": {"features": t_features, "train": t_train, "eval": t_eval},
    }
    if out_dir is not None:
        write_results(out_dir, "segment", result, segmentation_table(result))
        result["figure"] = str(_figure(drawn, Path(out_dir) / "segment.png", result))
    return result


def _figure(drawn: list, path: Path, result: dict) -> Path:
    from dinolab.eval.davis_data import davis_palette
    from dinolab.viz.dense import colour_labels, dense_figure

    palette = davis_palette()
    rows = [
        {"name": name, "panels": [("image", rgb, None),
                                  ("ground truth", colour_labels(gt, palette), None),
                                  ("prediction", colour_labels(pred, palette), None)]}
        for name, rgb, gt, pred in drawn
    ]  # fmt: skip
    title = f"segment {result['mode']}: mIoU {100 * result['scores']['mIoU']:.1f}"
    return dense_figure(rows, path, title)


def segmentation_table(result: dict) -> str:
    """Markdown: mIoU / accuracies, then IoU per class (in %)."""
    s = result["scores"]
    head = markdown_table(
        f"Linear segmentation ({result['mode']}, {result['images']['val']} val images)",
        ["mIoU", "pixel acc", "mean acc", "train s", "eval s"],
        [[100 * s["mIoU"], 100 * s["pixel_accuracy"], 100 * s["mean_accuracy"],
          result["seconds"]["train"], result["seconds"]["eval"]]],
    )  # fmt: skip
    rows = [[n, "absent" if v is None else 100 * v] for n, v in result["per_class_iou"].items()]
    return head + "\n" + markdown_table("IoU per class", ["class", "IoU"], rows)
