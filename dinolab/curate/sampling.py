"""`curate sample`: balanced top-down sampling over a cluster tree (DINOv3 / Vo et al. 2024).

At the top level the target is shared by water-filling: one cap for every cluster, the
largest cap with sum(min(cap, capacity)) <= target (binary search), the few images left given
one each to randomly chosen clusters above the cap, so the quotas hit the target exactly and
small clusters are taken whole. Each cluster's quota is shared the same way among its
children, down to level 1, where images are picked at random or closest to the centroid.
A cluster's capacity is floor(size x multiplier): with multiplier > 1 small clusters are
repeated (each image at most ceil(multiplier) times) to reach a target above their size.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dinolab.curate.hierarchy import ClusterTree, load_tree
from dinolab.curate.store import write_stage

STRATEGIES = ("random", "closest")


def water_fill(capacity: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Quotas q with sum(q) == target, q <= capacity, as equal as the capacities allow."""
    capacity = np.asarray(capacity, dtype=np.int64)
    if target > capacity.sum():
        raise ValueError(
            f"Cannot sample {target} images from {int(capacity.sum())}: lower --target or raise "
            "--multiplier."
        )
    lo, hi = 0, int(capacity.max(initial=0))
    while lo < hi:  # largest cap with sum(min(cap, capacity)) <= target
        mid = (lo + hi + 1) // 2
        if np.minimum(mid, capacity).sum() <= target:
            lo = mid
        else:
            hi = mid - 1
    quota = np.minimum(lo, capacity)
    left = target - int(quota.sum())
    if left:  # fewer than the clusters above the cap, else cap + 1 would have fitted
        above = np.flatnonzero(capacity > lo)
        quota[rng.choice(above, size=left, replace=False)] += 1
    return quota


def _pick(members: np.ndarray, quota: int, dist: np.ndarray | None, rng) -> np.ndarray:
    """`quota` of `members` (repeats when quota > len): random, or nearest first with dist."""
    whole, part = divmod(quota, len(members))
    order = np.argsort(dist, kind="stable") if dist is not None else rng.permutation(len(members))
    return np.concatenate([np.tile(members, whole), members[order[:part]]])


def sample_tree(
    tree: ClusterTree,
    target: int,
    strategy: str = "random",
    multiplier: float = 1.0,
    seed: int = 0,
    embeddings: torch.Tensor | None = None,
) -> np.ndarray:
    """Positions (into the clustered selection) of `target` images, balanced top-down."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown --strategy '{strategy}': use one of {', '.join(STRATEGIES)}.")
    if multiplier < 1:
        raise ValueError(f"--multiplier {multiplier}: use 1 or more.")
    rng = np.random.default_rng(seed)
    levels = len(tree.assign)
    capacity = [np.floor(tree.sizes(1) * multiplier).astype(np.int64)]
    for t in range(1, levels):  # a cluster's capacity: the sum of its children's
        capacity.append(np.bincount(tree.assign[t], capacity[-1], len(tree.centroids[t])))
    capacity = [c.astype(np.int64) for c in capacity]
    quota = water_fill(capacity[-1], target, rng)
    for t in range(levels - 1, 0, -1):  # share each level-(t+1) quota among its children
        child_quota = np.zeros(len(capacity[t - 1]), dtype=np.int64)
        parent_of = tree.assign[t]
        for parent in np.flatnonzero(quota):
            children = np.flatnonzero(parent_of == parent)
            child_quota[children] = water_fill(capacity[t - 1][children], quota[parent], rng)
        quota = child_quota
    labels = tree.assign[0]
    by_cluster = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_cluster], np.arange(len(quota) + 1))
    picked = []
    for c in np.flatnonzero(quota):
        members = by_cluster[bounds[c] : bounds[c + 1]]
        dist = None
        if strategy == "closest":
            centroid = torch.from_numpy(tree.centroids[0][c])
            dist = ((embeddings[members] - centroid) ** 2).sum(1).numpy()
        picked.append(_pick(members, int(quota[c]), dist, rng))
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def sample(
    cluster_dir: str | Path,
    out_dir: str | Path,
    target: int,
    strategy: str = "random",
    multiplier: float = 1.0,
    seed: int = 0,
) -> dict:
    """The sample stage: the list of `target` images (repeats only with multiplier > 1)."""
    t0 = time.perf_counter()
    selection, tree = load_tree(cluster_dir)
    emb = selection.embeddings() if strategy == "closest" else None
    positions = sample_tree(tree, target, strategy, multiplier, seed, emb)
    top = tree.sizes(len(tree.assign))
    taken = np.bincount(tree.assign[0][positions], minlength=len(tree.centroids[0]))
    for t in range(1, len(tree.assign)):
        taken = np.bincount(tree.assign[t], taken, len(tree.centroids[t]))
    report = {
        "target": target,
        "strategy": strategy,
        "multiplier": multiplier,
        "pool": int(len(selection)),
        "unique_images": int(len(np.unique(positions))),
        "top_level_sizes": top.tolist()[:1000],
        "top_level_taken": taken.astype(int).tolist()[:1000],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    report = write_stage(out_dir, selection.store, selection.rows[positions], report)
    return report
