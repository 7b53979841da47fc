"""`curate retrieve`: pool images close to a small curated seed set (DINOv2 section 3).

Sample-based: the `per_seed` nearest pool images of every seed image (cosine k-NN); an image
retrieved by several seeds is kept once and counted as a collision. Cluster-based: seeds are
assigned to the pool's level-1 clusters; every cluster holding more than `min_seeds` seed
images gives up to `per_cluster` images (nearest its centroid first), the seed set's total
capped at `max_images` (clusters with the most seeds first).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dinolab.curate.hierarchy import load_tree
from dinolab.curate.kmeans import assign
from dinolab.curate.knn_search import knn
from dinolab.curate.store import Selection, write_stage


def by_samples(
    pool: torch.Tensor, seeds: torch.Tensor, per_seed: int, backend: str = "auto"
) -> tuple[np.ndarray, int]:
    """(positions of the retrieved pool images, in first-retrieved order; collisions)."""
    _, idx = knn(seeds, pool, per_seed, backend=backend)
    flat = idx.flatten().numpy()
    unique, first = np.unique(flat, return_index=True)
    return unique[np.argsort(first, kind="stable")], int(len(flat) - len(unique))


def by_clusters(
    pool: torch.Tensor,
    pool_labels: np.ndarray,
    centroids: np.ndarray,
    seeds: torch.Tensor,
    per_cluster: int,
    min_seeds: int = 3,
    max_images: int | None = None,
) -> tuple[np.ndarray, dict]:
    """(positions of the pool images of the seeds' clusters; counts)."""
    c = torch.from_numpy(centroids).float()
    seed_labels = assign(seeds.float(), c)[0].numpy()
    seed_counts = np.bincount(seed_labels, minlength=len(c))
    chosen = np.flatnonzero(seed_counts > min_seeds)
    chosen = chosen[np.argsort(-seed_counts[chosen], kind="stable")]
    dist = ((pool - c[torch.from_numpy(pool_labels)]) ** 2).sum(1).numpy()
    picked, total = [], 0
    for cl in chosen:
        members = np.flatnonzero(pool_labels == cl)
        take = members[np.argsort(dist[members], kind="stable")][:per_cluster]
        if max_images is not None:
            take = take[: max(0, max_images - total)]
        picked.append(take)
        total += len(take)
    positions = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    return positions, {"clusters_with_seeds": int(np.count_nonzero(seed_counts)),
                       "clusters_used": int(len(chosen))}  # fmt: skip


def retrieve(
    pool: Selection | None,
    seeds: Selection,
    out_dir: str | Path,
    per_seed: int | None = 4,
    cluster_dir: str | Path | None = None,
    per_cluster: int = 1000,
    min_seeds: int = 3,
    max_images: int | None = None,
    backend: str = "auto",
) -> dict:
    """The retrieve stage (sample-based, or cluster-based with `cluster_dir`)."""
    t0 = time.perf_counter()
    seed_x = seeds.embeddings()
    if cluster_dir is not None:
        pool, tree = load_tree(cluster_dir)
        positions, counts = by_clusters(
            pool.embeddings(), tree.assign[0], tree.centroids[0], seed_x,
            per_cluster, min_seeds, max_images,
        )  # fmt: skip
        report = {"mode": "clusters", "per_cluster": per_cluster, "min_seeds": min_seeds, **counts}
    else:
        if pool is None:
            raise ValueError(
                "Give the pool's embedding folder (or --clusters DIR) to retrieve from."
            )
        positions, collisions = by_samples(pool.embeddings(), seed_x, per_seed, backend)
        report = {"mode": "samples", "per_seed": per_seed, "collisions": collisions}
    report.update(seeds=int(len(seeds)), pool=int(len(pool)),
                  seconds=round(time.perf_counter() - t0, 2))  # fmt: skip
    report = write_stage(out_dir, pool.store, pool.rows[positions], report)
    return report
