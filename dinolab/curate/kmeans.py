"""k-means for curation: k-means++ seeding, restarts, chunked assignment, float64 sums, and
resampling (DINOv3 / Vo et al. 2024) that spreads centroids over the data.

Plain k-means puts most centroids where most points are (it minimises squared error), so a
dominant concept gets many clusters and a rare one few. Resampling re-fits the centroids on
a balanced subsample (the `sample_size` points nearest each centroid), in which every cluster
weighs about the same; repeated, centroids move from dense to sparse regions.
"""

from __future__ import annotations

import torch


def assign(x: torch.Tensor, c: torch.Tensor, chunk_size: int = 8192):
    """(nearest centroid, squared distance) of every row, chunk by chunk."""
    c_sq = (c * c).sum(1)
    labels, dist = [], []
    for lo in range(0, len(x), chunk_size):
        xb = x[lo : lo + chunk_size]
        d = (xb * xb).sum(1, keepdim=True) - 2 * xb @ c.T + c_sq
        m, i = d.min(dim=1)
        labels.append(i)
        dist.append(m.clamp_min(0))
    return torch.cat(labels), torch.cat(dist)


def kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator, chunk_size: int = 8192):
    """k-means++ seeding: each new centroid drawn with probability ~ squared distance."""
    first = torch.randint(len(x), (1,), generator=gen)
    centroids = [x[first]]
    best = assign(x, centroids[0], chunk_size)[1].double()
    for _ in range(1, k):
        total = best.sum()
        if total <= 0:  # fewer distinct points than k: any point
            pick = torch.randint(len(x), (1,), generator=gen)
        else:
            pick = torch.multinomial(best / total, 1, generator=gen)
        centroids.append(x[pick])
        best = torch.minimum(best, assign(x, x[pick], chunk_size)[1].double())
    return torch.cat(centroids)


def lloyd(x: torch.Tensor, c: torch.Tensor, n_iter: int, chunk_size: int = 8192) -> dict:
    """Lloyd iterations from centroids c; float64 sums; an empty cluster takes a far point."""
    c = c.clone()
    for _ in range(n_iter):
        labels, dist = assign(x, c, chunk_size)
        sums = torch.zeros(len(c), x.shape[1], dtype=torch.float64)
        sums.index_add_(0, labels, x.double())
        counts = torch.bincount(labels, minlength=len(c))
        new = (sums / counts.clamp_min(1)[:, None]).float()
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            far = dist.topk(len(empty)).indices
            new[empty] = x[far]
        if torch.allclose(new, c, atol=1e-7, rtol=0):
            c = new
            break
        c = new
    labels, dist = assign(x, c, chunk_size)
    return {"centroids": c, "labels": labels, "inertia": float(dist.double().sum())}


def kmeans(
    x: torch.Tensor,
    k: int,
    n_iter: int = 20,
    n_init: int = 3,
    seed: int = 0,
    chunk_size: int = 8192,
    max_seed_points: int = 256,
) -> dict:
    """The best of `n_init` restarts (lowest inertia): {"centroids", "labels", "inertia"}.

    Seeding draws from at most `max_seed_points * k` random points (as faiss does).
    """
    x = x.float()
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means with k={k} needs between 1 and {len(x)} clusters.")
    gen = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(n_init):
        sample = x
        if len(x) > max_seed_points * k:
            sample = x[torch.randperm(len(x), generator=gen)[: max_seed_points * k]]
        fit = lloyd(x, kmeans_pp(sample, k, gen, chunk_size), n_iter, chunk_size)
        if best is None or fit["inertia"] < best["inertia"]:
            best = fit
    return best


def nearest_per_cluster(labels: torch.Tensor, dist: torch.Tensor, size: int) -> torch.Tensor:
    """Indices of the `size` rows nearest their centroid in every cluster (all of a small one)."""
    order = torch.argsort(dist, stable=True)
    order = order[torch.argsort(labels[order], stable=True)]  # by cluster, then by distance
    sorted_labels = labels[order]
    starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.arange(len(order)) - starts
    return order[rank < size]


def resampled_kmeans(
    x: torch.Tensor,
    k: int,
    n_resample: int = 10,
    sample_size: int = 10,
    n_iter: int = 20,
    n_init: int = 3,
    seed: int = 0,
    chunk_size: int = 8192,
) -> dict:
    """k-means, then `n_resample` rounds of: take the `sample_size` points nearest each
    centroid and fit k-means afresh (k-means++, restarts) on that balanced sample; the final
    assignment is over every point.

    Warm-started Lloyd would not move: an even reweighting inside each cell keeps every cell's
    mean, so the old centroids are already a fixed point. A fresh fit on the balanced sample
    finds the optimum for a density in which every old cluster weighs the same.
    """
    x = x.float()
    fit = kmeans(x, k, n_iter, n_init, seed, chunk_size)
    c = fit["centroids"]
    for step in range(n_resample):
        labels, dist = assign(x, c, chunk_size)
        sample = x[nearest_per_cluster(labels, dist, sample_size)]
        if len(sample) < k:
            break
        c = kmeans(sample, k, n_iter, n_init, seed + 1 + step, chunk_size)["centroids"]
    labels, dist = assign(x, c, chunk_size)
    return {"centroids": c, "labels": labels, "inertia": float(dist.double().sum())}
