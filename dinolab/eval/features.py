"""Frozen-backbone features of a labelled image folder, batched, with a progress bar."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dinolab.data import EvalTransform, build_dataset, collate_labeled

log = logging.getLogger("dinolab")


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    root: str,
    image_size: int,
    batch_size: int = 128,
    num_workers: int = 2,
    device: torch.device | str = "cpu",
    precision: str = "bf16",
    mean: tuple[float, ...] = (0.485, 0.456, 0.406),
    std: tuple[float, ...] = (0.229, 0.224, 0.225),
    progress: bool = True,
) -> dict:
    """CLS features (L2-normalised, float32) and labels of every readable image under `root`."""
    device = torch.device(device)
    dataset = build_dataset(
        root, "imagefolder", transform=EvalTransform(image_size, mean=mean, std=std), labeled=True
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_labeled,
    )
    backbone = backbone.to(device).eval()
    feats, labels, skipped = [], [], []
    use_bf16 = precision == "bf16"
    for batch in tqdm(loader, desc=f"features {root}", unit="batch", disable=not progress):
        skipped.extend(batch["skipped"])
        if len(batch["labels"]) == 0:
            continue
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = backbone(batch["images"].to(device, non_blocking=True))
        feats.append(F.normalize(out.float(), dim=-1).cpu())
        labels.append(batch["labels"])
    for err in skipped:
        log.warning("skipped unreadable image %s", err)
    if not feats:
        raise ValueError(f"No readable images under '{root}'.")
    return {
        "features": torch.cat(feats),
        "labels": torch.cat(labels),
        "classes": list(dataset.classes),
        "skipped": skipped,
    }


def check_same_classes(train_classes: list[str], val_classes: list[str]) -> None:
    """k-NN and linear probes need the validation classes to be the training classes."""
    if list(train_classes) != list(val_classes):
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise ValueError(
            "Validation classes differ from training classes "
            f"(only in train: {only_train[:5]}, only in val: {only_val[:5]}): use the same "
            "class subfolders in both."
        )
