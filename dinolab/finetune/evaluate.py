"""Validation of a classifier: top-1 / top-5, loss and confusion matrix (summed over
processes), and the pictures of a fine-tuning run (confusion matrix, curves)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from dinolab.distributed import all_reduce_sum
from dinolab.hardware import autocast
from dinolab.run_dir import read_metrics


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, precision: str
) -> dict:
    """{"top1", "top5" (in %), "loss", "images", "confusion" [true, predicted] counts}."""
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # top-5 hits, loss, images
    try:
        for batch in loader:
            if batch["num_images"] == 0:
                continue
            labels = batch["labels"].to(device)
            with autocast(device, precision):
                logits = model(batch["images"].to(device)).float()
            k = min(5, num_classes)
            top = logits.topk(k, dim=1).indices
            confusion.index_put_(
                (labels, top[:, 0]), torch.ones_like(labels, dtype=confusion.dtype), accumulate=True
            )
            sums[0] += (top == labels[:, None]).any(dim=1).sum()
            sums[1] += nn.functional.cross_entropy(logits, labels, reduction="sum")
            sums[2] += labels.numel()
    finally:
        model.train(was_training)
    confusion, sums = all_reduce_sum(confusion), all_reduce_sum(sums)
    n = max(float(sums[2]), 1.0)
    return {
        "top1": 100.0 * float(confusion.diagonal().sum()) / n,
        "top5": 100.0 * float(sums[0]) / n,
        "loss": float(sums[1]) / n,
        "images": int(sums[2]),
        "confusion": confusion.long().cpu(),
    }


def plot_confusion(confusion: Tensor, classes: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (true class per row) with the counts written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j] > 0:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, int(counts[i, j]), ha="center", va="center", fontsize=7, color=color
                    )
        ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_finetune_curves(metrics_path: Path, out_path: Path) -> Path:
    """Training loss and lr per step, validation top-1 / top-5 and loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    steps = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val/top1" in r]
    fig, axes = plt.subplots(1, 3, figsize=(12.6, 3.4))
    if steps:
        axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps], linewidth=1)
        axes[1].plot([r["step"] for r in steps], [r["lr"] for r in steps], linewidth=1)
    for key, label in (("val/top1", "top-1"), ("val/top5", "top-5")):
        if vals:
            axes[2].plot(
                [r["epoch"] for r in vals], [r[key] for r in vals], marker="o", label=label
            )
    best = max((r["val/top1"] for r in vals), default=float("nan"))
    titles = ("training loss", "learning rate (head)", f"val accuracy % (best top-1 {best:.1f})")
    for ax, title, xlabel in zip(axes, titles, ("step", "step", "epoch"), strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if vals:
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
