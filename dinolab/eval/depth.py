"""`dinolab eval depth`: linear monocular depth on frozen patch features (DINOv2's lin.1 / lin.4).

lin.1: last-block patch tokens with the CLS token concatenated to each; lin.4: the same from 4
evenly spaced blocks (a ViT; other backbones have one map). BatchNorm -> 1x1 conv to 256 bins
spaced uniformly over [min, max] depth, upsampled x4 bilinearly (the same as upsampling the
features first, see the head); probabilities (relu(logits) + 0.1) / sum, depth = sum p x bin
centre, upsampled to the ground truth. Loss: scale-invariant log, sqrt(Var(g) + 0.15 mean(g)^2),
g = log pred - log gt on valid pixels (only the mean term for the first 100 steps); AdamW lr
3e-4, warm-up + cosine. OUT gets depth.json / .md (RMSE, abs_rel, sq_rel, RMSE_log, log10,
delta < 1.25^k) and depth.png.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dinolab.eval import dense_data as data
from dinolab.eval.dense_features import extract_dense_features, upsample
from dinolab.eval.dense_probe import CropSampler, cached_targets, train_head
from dinolab.eval.depth_metrics import KEYS, depth_scores, mean_scores
from dinolab.eval.results import markdown_table, write_results
from dinolab.models.patch_features import block_count, evenly_spaced_blocks, patch_size_of

FIGURE_IMAGES = 4
WARMUP_MEAN_ONLY = 100


def bin_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(relu(logits) + 0.1) normalised over the bin axis (1): sums to 1, never 0."""
    p = logits.relu() + 0.1
    return p / p.sum(dim=1, keepdim=True)


class LinearDepthHead(nn.Module):
    """x4 bilinear upsampling -> BatchNorm2d -> 1x1 conv to `bins` -> expected bin centre."""

    def __init__(self, in_dim: int, min_depth: float, max_depth: float, bins: int = 256) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_dim)
        self.conv = nn.Conv2d(in_dim, bins, 1)
        nn.init.normal_(self.conv.weight, 0.0, 0.01)
        nn.init.zeros_(self.conv.bias)
        self.register_buffer("centres", torch.linspace(min_depth, max_depth, bins))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, 4h, 4w] depth in metres of [B, C, h, w] features.

        BN and the 1x1 conv run before the x4 upsampling, on 16x fewer cells: both are affine
        per cell and bilinear weights sum to 1, so at eval this equals upsampling the features
        first (DINOv2's order); in training only BN's batch statistics differ (slightly).
        """
        logits = self.conv(self.bn(x))
        probs = bin_probabilities(upsample(logits, (4 * x.shape[-2], 4 * x.shape[-1])))
        return (probs * self.centres[None, :, None, None]).sum(dim=1, keepdim=True)


def silog_loss(
    pred: torch.Tensor, gt: torch.Tensor, step: int = WARMUP_MEAN_ONLY, min_depth: float = 1e-3
) -> torch.Tensor:
    """Scale-invariant log loss of [B, 1, h, w] predictions upsampled to [B, H, W] depth."""
    pred = upsample(pred, tuple(gt.shape[-2:]))[:, 0]
    valid = gt > min_depth
    if not valid.any():
        return pred.sum() * 0.0
    g = pred[valid].clamp_min(min_depth).log() - gt[valid].log()
    if step < WARMUP_MEAN_ONLY:
        return (0.15 * g.mean() ** 2).sqrt()
    return (g.var(unbiased=False) + 0.15 * g.mean() ** 2).clamp_min(1e-12).sqrt()


def run_depth(
    backbone: nn.Module,
    train_root: str | Path,
    val_root: str | Path,
    out_dir: str | Path | None = None,
    *,
    mode: str = "lin1",
    max_depth: float = 10.0,
    min_depth: float = 1e-3,
    size: int = 224,
    crop: int | None = None,
    steps: int = 1000,
    batch: int = 8,
    lr: float = 3e-4,
    weight_decay: float = 1e-2,
    seed: int = 0,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train the depth head on train_root, score it on val_root; results in out_dir."""
    if mode not in ("lin1", "lin4"):
        raise ValueError(f"mode '{mode}' is unknown: use lin1 or lin4.")
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min depth < max depth, got {min_depth} and {max_depth}.")
    patch = patch_size_of(backbone)
    crop = crop or size
    n = 1 if mode == "lin1" else min(4, block_count(backbone))
    blocks = 1 if n == 1 else evenly_spaced_blocks(block_count(backbone), n)
    train_pairs, val_pairs = data.depth_pairs(train_root), data.depth_pairs(val_root)
    common = dict(size=size, blocks=blocks, with_cls=True, mean=mean, std=std, device=device,
                  precision=precision, cache_dir=cache_dir, progress=progress)  # fmt: skip
    t0 = time.perf_counter()
    train_feats = extract_dense_features(
        backbone, [p for p, _ in train_pairs], flips=(False, True), **common
    )
    val_feats = extract_dense_features(backbone, [p for p, _ in val_pairs], **common)
    t_features = time.perf_counter() - t0

    depths = [data.read_depth(d, data.read_image(i).shape[:2]) for i, d in train_pairs]
    target_of = cached_targets(depths, train_feats, patch, torch.float32)

    head = LinearDepthHead(train_feats.dim, min_depth, max_depth)
    sampler = CropSampler(train_feats, target_of, len(train_pairs), max(1, crop // patch),
                          patch, 0.0, seed)  # fmt: skip

    def loss_of(pred: torch.Tensor, gt: torch.Tensor, step: int) -> torch.Tensor:
        return silog_loss(pred, gt.clamp(max=max_depth) * (gt <= max_depth), step, min_depth)

    t0 = time.perf_counter()
    losses = train_head(head, sampler, loss_of, steps=steps, batch=batch, lr=lr,
                        weight_decay=weight_decay, warmup=min(100, steps // 10), seed=seed,
                        progress=progress, desc="depth head")  # fmt: skip
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    per_image, drawn = [], []
    with torch.no_grad():
        for j, (img, depth_path) in enumerate(val_pairs):
            rgb = data.read_image(img)
            gt = torch.from_numpy(data.read_depth(depth_path, rgb.shape[:2]))
            pred = upsample(head(val_feats.get(j)[None]), tuple(gt.shape))[0, 0]
            per_image.append(depth_scores(pred, gt, min_depth, max_depth))
            if len(drawn) < FIGURE_IMAGES:
                drawn.append((img.stem, rgb, gt.numpy(), pred.numpy()))
    t_eval = time.perf_counter() - t0
    result = {
        "protocol": "depth",
        "mode": mode,
        "train": str(train_root),
        "val": str(val_root),
        "scores": mean_scores(per_image),
        "params": {"size": size, "crop": crop, "blocks": blocks, "feature_dim": train_feats.dim,
                   "min_depth": min_depth, "max_depth": max_depth, "bins": 256, "steps": steps,
                   "batch": batch, "lr": lr, "weight_decay": weight_decay, "seed": seed},
        "images": {"train": len(train_pairs), "val": len(val_pairs)},
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "seconds": {"features": t_features, "train": t_train, "eval": t_eval},
    }  # fmt: skip
    if out_dir is not None:
        write_results(out_dir, "depth", result, depth_table(result))
        result["figure"] = str(_figure(drawn, Path(out_dir) / "depth.png", result))
    return result


def _figure(drawn: list, path: Path, result: dict) -> Path:
    from dinolab.viz.dense import dense_figure

    rows = [
        {"name": name, "panels": [("image", rgb, None), ("ground truth", gt, None),
                                  ("prediction", np.where(pred > 0, pred, 0), None)]}
        for name, rgb, gt, pred in drawn
    ]  # fmt: skip
    title = f"depth {result['mode']}: RMSE {result['scores']['rmse']:.3f} m"
    return dense_figure(rows, path, title)


def depth_table(result: dict) -> str:
    """Markdown: every depth metric (deltas in %)."""
    s = result["scores"]
    row = [f"{100 * s[k]:.2f}" if k.startswith("d") else f"{s[k]:.4f}" for k in KEYS]
    header = ["RMSE", "abs_rel", "sq_rel", "RMSE_log", "log10", "d<1.25", "d<1.25^2", "d<1.25^3"]
    title = f"Linear depth ({result['mode']}, {result['images']['val']} val images)"
    return markdown_table(title, header, [row])
