"""Linear probe of a frozen backbone: a grid of heads, the best one chosen on validation.

Two modes share the heads (`linear_heads.py`):
- "full": random-resized-crop + flip on the training images, one backbone forward per batch
  feeding every head (DINO / DINOv2 protocol), a few epochs by default;
- "fast": no augmentation, heads trained for many epochs on cached features (seconds).
Validation (and the optional test split) always uses resize + centre-crop features, cached.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T
from tqdm.auto import tqdm

from dinolab.data import collate_labeled
from dinolab.eval.features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    backbone_tokens,
    check_every_class,
    extract_features,
    labelled_folder,
    same_class_folders,
)
from dinolab.eval.linear_heads import (
    LinearHeadGrid,
    Variant,
    default_variants,
    select_best,
    train_on_features,
)
from dinolab.eval.results import markdown_table, write_results
from dinolab.hardware import autocast

log = logging.getLogger("dinolab")
# DINOv2's sweep (base lrs for a batch of 256; scaled linearly with the batch size).
DEFAULT_LRS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1)


def train_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """The probe's training augmentation: random-resized-crop (bicubic) + horizontal flip."""
    return T.Compose(
        [
            T.RandomResizedCrop(size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def train_on_images(
    grid: LinearHeadGrid,
    backbone: nn.Module,
    root: str,
    image_size: int,
    epochs: int,
    batch_size: int,
    device: torch.device,
    precision: str = "auto",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    num_workers: int = 2,
    seed: int = 0,
    progress: bool = True,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> dict:
    """Full mode: augmented images, one frozen forward per batch feeds every head."""
    dataset = labelled_folder(root, train_transform(image_size, mean, std))
    check_every_class(root, dataset.classes, torch.tensor(dataset.targets))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        collate_fn=collate_labeled,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )
    grid.init_sgd(batch_size / 256, momentum, weight_decay)
    steps, step, loss = epochs * len(loader), 0, float("nan")
    n_blocks, avgpool = grid.stored
    was_training = backbone.training
    backbone.to(device).eval()
    try:
        for epoch in range(epochs):
            bar = tqdm(loader, desc=f"linear {epoch + 1}/{epochs}", disable=not progress)
            for batch in bar:
                step += 1
                if batch["num_images"] == 0:
                    continue
                images = batch["images"].to(device, non_blocking=True)
                with torch.no_grad(), autocast(device, precision):
                    rows = backbone_tokens(backbone, images, n_blocks, avgpool)
                loss = grid.step(rows, batch["labels"].to(device), (step - 1) / steps)
                bar.set_postfix(loss=f"{loss:.3f}")
    finally:
        backbone.train(was_training)
    return {"steps": step, "final_loss": loss}


def run_linear(
    backbone: nn.Module,
    train_root: str,
    val_root: str,
    image_size: int,
    mode: str = "full",
    test_root: str | None = None,
    variants: list[Variant] | None = None,
    lrs: Sequence[float] = DEFAULT_LRS,
    epochs: int = 0,
    batch_size: int = 128,
    seed: int = 0,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    out_dir: str | Path | None = None,
    **feature_kwargs,
) -> dict:
    """Train the grid, choose the head with the best val top-1, report it (and on test).

    `epochs` 0 means 10 (full) or 100 (fast); results go to linear.json / linear.md.
    """
    if mode not in ("full", "fast"):
        raise ValueError(f"Unknown linear-probe mode '{mode}': use 'full' or 'fast'.")
    epochs = epochs or (10 if mode == "full" else 100)
    variants = variants or default_variants(backbone)
    stored = (max(v.n_blocks for v in variants), any(v.avgpool for v in variants))
    kw = {**feature_kwargs, "n_last_blocks": stored[0], "avgpool": stored[1]}
    device = torch.device(kw.get("device", "cpu"))
    train_classes = same_class_folders(train_root, val_root, test_root)
    val = extract_features(backbone, val_root, image_size, **kw)
    train = extract_features(backbone, train_root, image_size, **kw) if mode == "fast" else None
    dim = val["features"].shape[1] // (stored[0] + int(stored[1]))
    torch.manual_seed(seed)
    grid = LinearHeadGrid(dim, len(train_classes), variants, list(lrs), stored).to(device)
    t0 = time.perf_counter()
    if train is not None:
        fit = train_on_features(
            grid,
            train["features"],
            train["labels"],
            epochs,
            batch_size,
            seed,
            momentum,
            weight_decay,
        )
    else:
        img_kw = {
            k: kw[k] for k in ("precision", "mean", "std", "num_workers", "progress") if k in kw
        }
        fit = train_on_images(
            grid,
            backbone,
            train_root,
            image_size,
            epochs,
            batch_size,
            device,
            seed=seed,
            momentum=momentum,
            weight_decay=weight_decay,
            **img_kw,
        )
    heads = grid.evaluate(val["features"], val["labels"])
    best = select_best(heads)
    result = {
        "protocol": "linear",
        "mode": mode,
        "train": str(train_root),
        "val": str(val_root),
        "n_val": len(val["labels"]),
        "n_train": len(train["labels"]) if train else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "train_seconds": round(time.perf_counter() - t0, 2),
        **fit,
        "best": {"head": best, **heads[best]},
        "heads": heads,
    }
    if not math.isfinite(fit["final_loss"]):
        log.warning("linear probe loss is not finite: some learning rates are too high")
    if test_root:
        test = extract_features(backbone, test_root, image_size, **kw)
        scores = grid.evaluate(test["features"], test["labels"])[best]
        result.update(test=str(test_root), n_test=len(test["labels"]))
        result["best"].update(test_top1=scores["top1"], test_top5=scores["top5"])
    if out_dir is not None:
        write_results(out_dir, "linear", result, linear_table(result))
    return result


def linear_table(result: dict) -> str:
    """Markdown: the best lr of each feature variant, then the chosen head."""
    rows = []
    for variant in dict.fromkeys(h["variant"] for h in result["heads"].values()):
        mine = [h for h in result["heads"].values() if h["variant"] == variant]
        h = max(mine, key=lambda h: h["top1"])
        rows.append([variant, f"{h['lr']:g}", h["top1"], h["top5"]])
    b = result["best"]
    rows.append([f"**best: {b['variant']}**", f"{b['lr']:g}", b["top1"], b["top5"]])
    title = (
        f"Linear probe ({result['mode']} mode, {result['epochs']} epochs, "
        f"{len(result['heads'])} heads, {result['n_val']} val images)"
    )
    table = markdown_table(title, ["features", "lr", "val top-1", "val top-5"], rows)
    if "test_top1" in b:
        table += f"\nTest ({result['n_test']} images): top-1 {b['test_top1']:.2f}, "
        table += f"top-5 {b['test_top5']:.2f}\n"
    return table
