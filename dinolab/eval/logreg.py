"""Multinomial logistic regression on frozen features: L2 penalty, L-BFGS in torch.

The objective is scikit-learn's: 0.5 ||W||^2 + C * sum_i CE_i (bias not penalised), divided
by C * N so it is a mean. Features are standardised with the training mean and std, so one
grid of C means the same thing for every backbone. Each C starts from the previous solution
(C ascending), which makes the whole grid cost little more than its largest C.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dinolab.eval.features import extract_features, same_class_folders
from dinolab.eval.results import markdown_table, write_results

DEFAULT_CS = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)


def fit_logreg(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    C: float,
    max_iter: int = 200,
    init: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Weights [num_classes, D] and bias [num_classes] minimising the penalised mean CE."""
    w = torch.zeros(num_classes, x.shape[1], device=x.device)
    b = torch.zeros(num_classes, device=x.device)
    if init is not None:
        w, b = init[0].clone(), init[1].clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )
    penalty = 1.0 / (2.0 * C * x.shape[0])

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.t() + b, y) + penalty * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


@torch.no_grad()
def accuracy(x: Tensor, y: Tensor, w: Tensor, b: Tensor) -> dict[str, float]:
    """Top-1 / top-5 in percent."""
    logits = x @ w.t() + b
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
    n = x.shape[0]
    return {"top1": 100 * float(top[:, 0].sum()) / n, "top5": 100 * float(top.any(1).sum()) / n}


def logreg_grid(
    train_x: Tensor,
    train_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    num_classes: int,
    Cs: Sequence[float] = DEFAULT_CS,
    max_iter: int = 200,
    device: torch.device | str = "cpu",
) -> dict:
    """Fit every C, score on val; {"scores": {C: {...}}, "best_C", "model": (w, b, mean, std)}."""
    train_x = train_x.to(device, torch.float32)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    tx = (train_x - mean) / std
    vx = (val_x.to(device, torch.float32) - mean) / std
    train_y, val_y = train_y.to(device), val_y.to(device)
    scores, models, init = {}, {}, None
    for C in sorted(Cs):
        init = fit_logreg(tx, train_y, num_classes, C, max_iter, init)
        models[C] = init
        scores[C] = {
            **accuracy(vx, val_y, *init),
            "train_top1": accuracy(tx, train_y, *init)["top1"],
        }
    best = max(scores, key=lambda c: (scores[c]["top1"], -c))  # ties: the strongest penalty
    return {"scores": scores, "best_C": best, "model": (*models[best], mean, std)}


def logreg_holdout(
    train: dict, test: dict, val_fraction: float = 0.1, Cs: Sequence[float] = DEFAULT_CS
) -> dict[str, float]:
    """Fit on train minus a seeded held-out fraction (which picks C); top-1 / top-5 on test.

    `train` / `test` are {"features", "labels", "classes"} dicts of `extract_features`.
    """
    n = len(train["labels"])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val = max(1, int(n * val_fraction))
    val_idx, fit_idx = order[:n_val], order[n_val:]
    x, y = train["features"].float(), train["labels"]
    grid = logreg_grid(x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], len(train["classes"]), Cs)
    w, b, mean, std = grid["model"]
    scores = accuracy((test["features"].float() - mean) / std, test["labels"], w, b)
    return {**scores, "C": grid["best_C"]}


def run_logreg(
    backbone,
    train_root: str,
    val_root: str,
    image_size: int,
    Cs: Sequence[float] = DEFAULT_CS,
    variant: tuple[int, bool] = (1, False),
    test_root: str | None = None,
    max_iter: int = 200,
    out_dir: str | Path | None = None,
    **feature_kwargs,
) -> dict:
    """Cached features of the folders, the C grid chosen on val; logreg.json / logreg.md."""
    same_class_folders(train_root, val_root, test_root)
    kw = {**feature_kwargs, "n_last_blocks": variant[0], "avgpool": variant[1]}
    train = extract_features(backbone, train_root, image_size, **kw)
    val = extract_features(backbone, val_root, image_size, **kw)
    t0 = time.perf_counter()
    grid = logreg_grid(
        train["features"],
        train["labels"],
        val["features"],
        val["labels"],
        len(train["classes"]),
        Cs,
        max_iter,
        kw.get("device", "cpu"),
    )
    best = grid["best_C"]
    result = {
        "protocol": "logreg",
        "train": str(train_root),
        "val": str(val_root),
        "n_train": len(train["labels"]),
        "n_val": len(val["labels"]),
        "features": f"blocks{variant[0]}{'+avgpool' if variant[1] else ''}",
        "fit_seconds": round(time.perf_counter() - t0, 2),
        "scores": {f"{c:g}": s for c, s in grid["scores"].items()},
        "best": {"C": best, **grid["scores"][best]},
    }
    if test_root:
        test = extract_features(backbone, test_root, image_size, **kw)
        w, b, mean, std = grid["model"]
        tx = (test["features"].to(mean.device, torch.float32) - mean) / std
        s = accuracy(tx, test["labels"].to(mean.device), w, b)
        result.update(test=str(test_root), n_test=len(test["labels"]))
        result["best"].update(test_top1=s["top1"], test_top5=s["top5"])
    if out_dir is not None:
        write_results(out_dir, "logreg", result, logreg_table(result))
    return result


def logreg_table(result: dict) -> str:
    """Markdown: one row per C, the chosen one in bold."""
    best = result["best"]["C"]
    rows = [
        [f"**{c}**" if float(c) == best else c, s["train_top1"], s["top1"], s["top5"]]
        for c, s in result["scores"].items()
    ]
    title = (
        f"Logistic regression ({result['features']}, {result['n_train']} train / "
        f"{result['n_val']} val images, best C = {best:g})"
    )
    table = markdown_table(title, ["C", "train top-1", "val top-1", "val top-5"], rows)
    if "test_top1" in result["best"]:
        table += f"\nTest ({result['n_test']} images): top-1 {result['best']['test_top1']:.2f}\n"
    return table
