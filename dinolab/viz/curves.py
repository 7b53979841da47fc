"""Training curves as one PNG: loss, the collapse monitors (teacher entropy, KL) and schedules."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dinolab.run_dir import read_metrics  # noqa: E402

PANELS = [
    ("loss", "DINO loss (cross-entropy)"),
    ("teacher_entropy", "teacher entropy h(P_t)"),
    ("kl", "KL(P_t || P_s)"),
    ("lr", "learning rate"),
]


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _plot_knn(ax, rows: list[dict]) -> None:
    """k-NN top-1 over steps, one line per (model, k): the run's health without the loss."""
    keys = sorted({k for r in rows for k in r if k.startswith("knn/") and k.endswith("_top1")})
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        label = key.removeprefix("knn/").removesuffix("_top1").replace("_", " ")
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3, linewidth=1.2, label=label)
    last = rows[-1]
    best = max((v for k, v in last.items() if k in keys), default=float("nan"))
    ax.set_title(f"k-NN top-1 % (last best {best:.1f})", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot_training_curves(
    metrics_path: str | Path, out_path: str | Path, out_dim: int | None = None
) -> Path:
    """Draw the per-step curves of a run; log K is marked on the entropy panel (uniform)."""
    rows = [r for r in read_metrics(metrics_path) if "loss" in r]
    if not rows:
        raise ValueError(f"No training steps in '{metrics_path}' to plot.")
    knn = [r for r in read_metrics(metrics_path) if any(k.startswith("knn/") for k in r)]
    ncols = len(PANELS) + bool(knn)
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.4))
    steps = [r["step"] for r in rows]
    window = max(1, len(rows) // 50)
    for ax, (key, title) in zip(axes, PANELS, strict=False):
        values = [r.get(key, float("nan")) for r in rows]
        ax.plot(steps, values, color="0.75", linewidth=0.8, label="per step")
        if window > 1 and key != "lr":
            ax.plot(steps, _smooth(values, window), color="C0", linewidth=1.5, label="smoothed")
        if key == "teacher_entropy" and out_dim:
            ax.axhline(
                math.log(out_dim),
                color="C3",
                linestyle="--",
                linewidth=1,
                label="log K (uniform = collapse)",
            )
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if knn:
        _plot_knn(axes[-1], knn)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
