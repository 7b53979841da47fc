"""Weighted k-NN classification on frozen features (DINO's protocol, Wu et al. 2018).

The k nearest training features (cosine similarity) vote for their class with weight
exp(similarity / T); T = 0.07 and k in {10, 20, 100, 200} as in the paper.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import Tensor

from dinolab.eval.features import check_same_classes, extract_features


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
) -> dict[int, dict[str, float]]:
    """Top-1 / top-5 accuracy (percent) for each k; features must be L2-normalised rows."""
    if train_features.shape[0] == 0 or test_features.shape[0] == 0:
        raise ValueError("k-NN needs at least one training and one test feature.")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    max_k = min(max(ks), train_features.shape[0])
    correct = {k: torch.zeros(2) for k in ks}
    train_t = train_features.t().contiguous()
    for start in range(0, test_features.shape[0], chunk_size):
        feats = test_features[start : start + chunk_size]
        targets = test_labels[start : start + chunk_size]
        sims, idx = (feats @ train_t).topk(max_k, dim=1, largest=True, sorted=True)
        neighbour_labels = train_labels[idx]
        weights = (sims / temperature).exp()
        for k in ks:
            kk = min(k, max_k)
            votes = torch.zeros(feats.shape[0], num_classes, dtype=weights.dtype)
            votes.scatter_add_(1, neighbour_labels[:, :kk], weights[:, :kk])
            top = votes.topk(min(5, num_classes), dim=1).indices
            hits = top == targets[:, None]
            correct[k] += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum()]).float()
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
    """Features of both folders, k-NN for every k; JSON + markdown table in `out_dir`."""
    train = extract_features(backbone, train_root, image_size, **feature_kwargs)
    val = extract_features(backbone, val_root, image_size, **feature_kwargs)
    check_same_classes(train["classes"], val["classes"])
    t0 = time.perf_counter()
    scores = knn_classify(
        train["features"],
        train["labels"],
        val["features"],
        val["labels"],
        ks=ks,
        temperature=temperature,
        num_classes=len(train["classes"]),
    )
    result = {
        "train": str(train_root),
        "val": str(val_root),
        "n_train": len(train["labels"]),
        "n_val": len(val["labels"]),
        "temperature": temperature,
        "knn_seconds": round(time.perf_counter() - t0, 3),
        "scores": {str(k): v for k, v in scores.items()},
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        (out_dir / "knn.json").write_text(json.dumps(result, indent=2))
        (out_dir / "knn.md").write_text(knn_table(result))
    return result


def knn_table(result: dict) -> str:
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
