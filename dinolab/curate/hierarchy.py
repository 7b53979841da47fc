"""`curate cluster`: hierarchical k-means over a selection, saved level by level.

Level 1 clusters the images; level t clusters the centroids of level t-1 (DINOv3, Vo et al.
2024), so the top level holds a few broad concepts and level 1 many fine ones. Each level is
written when done (`level_<t>_centroids.npy`, `level_<t>_assign.npy`: the level-t cluster of
every level t-1 unit, images for t = 1), so a killed run restarts at the next level.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dinolab.curate.kmeans import resampled_kmeans
from dinolab.curate.store import Selection, open_selection, read_json, write_json, write_stage

TREE = "tree.json"


@dataclass
class ClusterTree:
    """assign[t]: the level t+1 cluster of each level-t unit (level 0 = the images)."""

    assign: list[np.ndarray]
    centroids: list[np.ndarray]

    def sizes(self, level: int) -> np.ndarray:
        """Images under each cluster of `level` (1-based)."""
        labels = self.assign[0]
        for t in range(1, level):
            labels = self.assign[t][labels]
        return np.bincount(labels, minlength=len(self.centroids[level - 1]))


def cluster_tree(
    x: torch.Tensor,
    levels: list[int],
    out_dir: str | Path | None = None,
    n_resample: int = 0,
    sample_size: int = 10,
    n_iter: int = 20,
    n_init: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> ClusterTree:
    """Fit every level (resuming from `out_dir` where its levels are already saved)."""
    settings = {"levels": levels, "n_resample": n_resample, "sample_size": sample_size,
                "n_iter": n_iter, "n_init": n_init, "seed": seed, "count": len(x)}  # fmt: skip
    out = Path(out_dir) if out_dir is not None else None
    done = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        state = read_json(out / TREE) if (out / TREE).is_file() else None
        done = state["done"] if state and state["settings"] == settings else 0
    assign, centroids = [], []
    for t in range(done):
        assign.append(np.load(out / f"level_{t + 1}_assign.npy"))
        centroids.append(np.load(out / f"level_{t + 1}_centroids.npy"))
    units = x.float() if done == 0 else torch.from_numpy(centroids[-1])
    for t in tqdm(range(done, len(levels)), desc="k-means levels", disable=not progress):
        k = min(levels[t], len(units))
        fit = resampled_kmeans(units, k, n_resample, sample_size, n_iter, n_init, seed + t)
        assign.append(fit["labels"].numpy())
        centroids.append(fit["centroids"].numpy())
        units = fit["centroids"]
        if out is not None:
            np.save(out / f"level_{t + 1}_assign.npy", assign[-1])
            np.save(out / f"level_{t + 1}_centroids.npy", centroids[-1])
            write_json(out / TREE, {"settings": settings, "done": t + 1})
    return ClusterTree(assign, centroids)


def load_tree(cluster_dir: str | Path) -> tuple[Selection, ClusterTree]:
    """The selection a `cluster` folder was fitted on, and its tree."""
    out = Path(cluster_dir)
    if not (out / TREE).is_file():
        raise FileNotFoundError(
            f"'{out}' is not a `dinolab curate cluster` folder (no {TREE}): check the path."
        )
    state = read_json(out / TREE)
    n = len(state["settings"]["levels"])
    if state["done"] < n:
        raise ValueError(
            f"Clustering in '{out}' stopped at level {state['done']} of {n}: run "
            "`dinolab curate cluster` again with the same arguments to finish it."
        )
    assign = [np.load(out / f"level_{t + 1}_assign.npy") for t in range(n)]
    centroids = [np.load(out / f"level_{t + 1}_centroids.npy") for t in range(n)]
    return open_selection(out), ClusterTree(assign, centroids)


def cluster(selection: Selection, out_dir: str | Path, levels: list[int], **kw) -> dict:
    """The cluster stage: fit, write the folder (selection = its input), report sizes."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    if not levels or any(k < 1 for k in levels):
        raise ValueError(f"--levels {levels}: give cluster counts >= 1, finest first (1000,100).")
    if len(selection) == 0:
        raise ValueError("No images to cluster: the input selection is empty.")
    tree = cluster_tree(selection.embeddings(), levels, out, **kw)
    report = {"levels": levels, "seconds": round(time.perf_counter() - t0, 2)}
    for t in range(1, len(levels) + 1):
        s = tree.sizes(t)
        report[f"level_{t}"] = {"clusters": int(len(s)), "min": int(s.min()),
                                "median": float(np.median(s)), "max": int(s.max())}  # fmt: skip
    report = write_stage(out, selection.store, selection.rows, report)
    return report
