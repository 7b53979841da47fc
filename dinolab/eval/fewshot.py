"""Few-shot k-NN: a memory bank of n training images per class, several seeded draws.

One draw of n images per class is noisy, so the protocol repeats it with `tries` seeds and
reports mean and standard deviation; the features are extracted (and cached) once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dinolab.eval.features import extract_features, same_class_folders
from dinolab.eval.knn import knn_classify
from dinolab.eval.results import markdown_table, write_results


def sample_per_class(labels: Tensor, n: int, seed: int, num_classes: int | None = None) -> Tensor:
    """Indices of exactly n random items of every class (sorted); too few is an error."""
    num_classes = num_classes or int(labels.max()) + 1
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        if len(members) < n:
            raise ValueError(
                f"Class {c} has {len(members)} training image(s), fewer than {n} shots: "
                "lower the number of shots."
            )
        picked.append(members[torch.randperm(len(members), generator=g)[:n]])
    return torch.cat(picked).sort().values


def _mean_std(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    std = float(t.std()) if len(values) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std}


def fewshot_knn(
    train_features: Tensor,
    train_labels: Tensor,
    val_features: Tensor,
    val_labels: Tensor,
    shots: list[int] | tuple[int, ...] = (1, 5, 10),
    tries: int = 5,
    ks: list[int] | tuple[int, ...] = (10, 20),
    temperature: float = 0.07,
    num_classes: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """{shots: {k: {"top1": {mean, std, runs}, "top5": {...}}}} over `tries` draws."""
    num_classes = num_classes or int(train_labels.max()) + 1
    out: dict[str, dict[str, dict]] = {}
    for n in shots:
        runs: dict[int, dict[str, list[float]]] = {k: {"top1": [], "top5": []} for k in ks}
        for t in range(tries):
            idx = sample_per_class(train_labels, n, seed + 1000 * n + t, num_classes)
            scores = knn_classify(
                train_features[idx],
                train_labels[idx],
                val_features,
                val_labels,
                ks=ks,
                temperature=temperature,
                num_classes=num_classes,
            )
            for k in ks:
                for m in ("top1", "top5"):
                    runs[k][m].append(scores[k][m])
        out[str(n)] = {
            str(k): {m: {**_mean_std(v), "runs": v} for m, v in r.items()} for k, r in runs.items()
        }
    return out


def run_fewshot(
    backbone,
    train_root: str,
    val_root: str,
    image_size: int,
    shots: list[int] | tuple[int, ...] = (1, 5, 10),
    tries: int = 5,
    ks: list[int] | tuple[int, ...] = (10, 20),
    temperature: float = 0.07,
    seed: int = 0,
    out_dir: str | Path | None = None,
    **feature_kwargs,
) -> dict:
    """Features of both folders once, then `fewshot_knn`; fewshot.json / fewshot.md."""
    same_class_folders(train_root, val_root)
    train = extract_features(backbone, train_root, image_size, **feature_kwargs)
    val = extract_features(backbone, val_root, image_size, **feature_kwargs)
    scores = fewshot_knn(
        train["features"],
        train["labels"],
        val["features"],
        val["labels"],
        shots=shots,
        tries=tries,
        ks=ks,
        temperature=temperature,
        num_classes=len(train["classes"]),
        seed=seed,
    )
    result = {
        "protocol": "fewshot_knn",
        "train": str(train_root),
        "val": str(val_root),
        "n_classes": len(train["classes"]),
        "n_val": len(val["labels"]),
        "tries": tries,
        "seed": seed,
        "temperature": temperature,
        "scores": scores,
    }
    if out_dir is not None:
        write_results(out_dir, "fewshot", result, fewshot_table(result))
    return result


def fewshot_table(result: dict) -> str:
    """Markdown: one row per (shots, k), mean ± std over the tries."""
    rows = [
        [
            n,
            k,
            f"{s['top1']['mean']:.2f} ± {s['top1']['std']:.2f}",
            f"{s['top5']['mean']:.2f} ± {s['top5']['std']:.2f}",
        ]
        for n, by_k in result["scores"].items()
        for k, s in by_k.items()
    ]
    title = (
        f"Few-shot k-NN ({result['n_classes']} classes, {result['n_val']} val images, "
        f"{result['tries']} draws, T = {result['temperature']})"
    )
    return markdown_table(title, ["shots / class", "k", "top-1", "top-5"], rows)
