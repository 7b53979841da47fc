"""Weighted k-NN classification on frozen features (DINO's protocol, Wu et al. 2018).

The k nearest training features (cosine similarity) vote for their class with weight
exp(similarity / T); T = 0.07 and k in {10, 20, 100, 200} as in the paper. Both the queries
and the memory bank are processed in chunks, so a memmap-backed bank never has to be copied
into RAM whole.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dinolab.data.augment import IMAGENET_RESIZE_RATIO
from dinolab.eval.features import extract_features, same_class_folders
from dinolab.eval.results import write_results


def _rows(x: Tensor, device: torch.device, normalize: bool) -> Tensor:
    """float32 rows on `device`, L2-normalised if asked."""
    x = x.to(device, torch.float32)
    return F.normalize(x, dim=1) if normalize else x


def _nearest(
    queries: Tensor, bank: Tensor, k: int, normalize: bool, bank_chunk: int
) -> tuple[Tensor, Tensor]:
    """Top-k cosine similarities and bank indices of each query, merged over bank chunks."""
    best_s = queries.new_empty(queries.shape[0], 0)
    best_i = torch.empty(queries.shape[0], 0, dtype=torch.long, device=queries.device)
    for start in range(0, bank.shape[0], bank_chunk):
        chunk = _rows(bank[start : start + bank_chunk], queries.device, normalize)
        s, i = (queries @ chunk.t()).topk(min(k, chunk.shape[0]), dim=1)
        best_s, order = torch.cat([best_s, s], 1).topk(min(k, best_s.shape[1] + s.shape[1]), 1)
        best_i = torch.cat([best_i, i + start], 1).gather(1, order)
    return best_s, best_i


@torch.no_grad()
def knn_classify(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    ks: list[int] | tuple[int, ...] = (10, 20, 100, 200),
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    normalize: bool = True,
    bank_chunk_size: int = 65536,
    device: torch.device | str | None = None,
) -> dict[int, dict[str, float]]:
    """Top-1 / top-5 accuracy (percent) for each k; k larger than the bank is clipped.

    `normalize` L2-normalises rows chunk by chunk (a no-op for rows that already are). A bank
    of at most `bank_chunk_size` rows is moved and normalised once, not once per query chunk.
    """
    if train_features.shape[0] == 0 or test_features.shape[0] == 0:
        raise ValueError("k-NN needs at least one training and one test feature.")
    device = torch.device(device) if device is not None else train_features.device
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    max_k = min(max(ks), train_features.shape[0])
    train_labels = train_labels.to(device)
    bank, bank_normalize = train_features, normalize
    if bank.shape[0] <= bank_chunk_size:  # one chunk anyway: prepare it once
        bank, bank_normalize = _rows(bank, device, normalize), False
    correct = {k: torch.zeros(2) for k in ks}
    for start in range(0, test_features.shape[0], chunk_size):
        feats = _rows(test_features[start : start + chunk_size], device, normalize)
        targets = test_labels[start : start + chunk_size].to(device)
        sims, idx = _nearest(feats, bank, max_k, bank_normalize, bank_chunk_size)
        neighbour_labels = train_labels[idx]
        weights = (sims / temperature).exp()
        for k in ks:
            kk = min(k, max_k)
            votes = torch.zeros(feats.shape[0], num_classes, dtype=weights.dtype, device=device)
            votes.scatter_add_(1, neighbour_labels[:, :kk], weights[:, :kk])
            top = votes.topk(min(5, num_classes), dim=1).indices
            hits = top == targets[:, None]
            correct[k] += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum()]).float().cpu()
    n = test_features.shape[0]
    return {
        k: {"top1": 100.0 * float(c[0]) / n, "top5": 100.0 * float(c[1]) / n}
        for k, c in correct.items()
    }


def run_knn(
    backbone,
    train_root: str,
    val_root: str,
    image_size: int,
    ks: list[int] | tuple[int, ...] = (10, 20, 100, 200),
    temperature: float = 0.07,
    out_dir: str | Path | None = None,
    **feature_kwargs,
) -> dict:
    """Features of both folders (cached with `cache_dir=`), k-NN for every k.

    Writes knn.json and knn.md in `out_dir`; `feature_kwargs` go to `extract_features`.
    """
    same_class_folders(train_root, val_root)
    train = extract_features(backbone, train_root, image_size, **feature_kwargs)
    val = extract_features(backbone, val_root, image_size, **feature_kwargs)
    t0 = time.perf_counter()
    scores = knn_classify(
        train["features"],
        train["labels"],
        val["features"],
        val["labels"],
        ks=ks,
        temperature=temperature,
        num_classes=len(train["classes"]),
        device=feature_kwargs.get("device"),
    )
    result = {
        "protocol": "knn",
        "train": str(train_root),
        "val": str(val_root),
        "n_train": len(train["labels"]),
        "n_val": len(val["labels"]),
        "image_size": image_size,  # and the view: resized to image_size * ratio, centre crop
        "resize_ratio": feature_kwargs.get("resize_ratio", IMAGENET_RESIZE_RATIO),
        "temperature": temperature,
        "knn_seconds": round(time.perf_counter() - t0, 3),
        "scores": {str(k): v for k, v in scores.items()},
    }
    if out_dir is not None:
        write_results(out_dir, "knn", result, knn_table(result))
    return result


def knn_table(result: dict) -> str:
    """Markdown: one row per k."""
    lines = [
        f"k-NN ({result['n_train']} train / {result['n_val']} val images, "
        f"T = {result['temperature']})",
        "",
        "| k | top-1 | top-5 |",
        "|---|---|---|",
    ]
    for k, s in result["scores"].items():
        lines.append(f"| {k} | {s['top1']:.2f} | {s['top5']:.2f} |")
    return "\n".join(lines) + "\n"
