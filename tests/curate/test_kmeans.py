import numpy as np
import torch

from dinolab.curate.hierarchy import cluster_tree
from dinolab.curate.kmeans import assign, kmeans, nearest_per_cluster, resampled_kmeans
from tests.curate.toys import blobs, five_rings


def _purity(pred: torch.Tensor, truth: torch.Tensor) -> bool:
    """Each found cluster is exactly one true blob (same partition)."""
    pairs = set(zip(pred.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(pred.tolist())) == len(set(truth.tolist()))


def test_kmeans_finds_separable_blobs():
    x, truth = blobs(k=6, per=80)
    fit = kmeans(x, 6, n_init=3, seed=0)
    assert _purity(fit["labels"], truth)
    # centroids are the blob means (float64 sums)
    for c in range(6):
        members = x[fit["labels"] == c].double().mean(0).float()
        assert torch.allclose(fit["centroids"][c], members, atol=1e-5)


def test_restarts_keep_the_lowest_inertia():
    x, _ = blobs(k=8, per=30, seed=3)
    one = kmeans(x, 8, n_init=1, seed=5)["inertia"]
    many = kmeans(x, 8, n_init=6, seed=5)["inertia"]
    assert many <= one


def test_chunked_assignment_equals_one_block():
    x, c = torch.randn(1000, 5), torch.randn(7, 5)
    a1, d1 = assign(x, c, chunk_size=64)
    a2, d2 = assign(x, c, chunk_size=100000)
    assert torch.equal(a1, a2) and torch.allclose(d1, d2, atol=1e-5)


def test_nearest_per_cluster_takes_the_nearest_rows_of_each_cluster():
    labels = torch.tensor([0, 1, 0, 0, 1, 2])
    dist = torch.tensor([3.0, 1.0, 1.0, 2.0, 0.5, 9.0])
    assert sorted(nearest_per_cluster(labels, dist, 2).tolist()) == [1, 2, 3, 4, 5]


def _centroids_per_ring(c: torch.Tensor, x: torch.Tensor, rings: torch.Tensor) -> np.ndarray:
    return torch.bincount(rings[assign(c, x)[0]], minlength=5).numpy()


def test_resampling_spreads_centroids_over_the_five_rings():
    x, rings = five_rings(sizes=(5000, 50, 250, 125, 2000))
    plain = _centroids_per_ring(kmeans(x, 20, n_init=1)["centroids"], x, rings)
    spread = _centroids_per_ring(
        resampled_kmeans(x, 20, n_resample=5, sample_size=10, n_init=1)["centroids"], x, rings
    )
    # measured: plain [9, 1, 2, 1, 7], resampled [5, 5, 2, 3, 5]
    assert spread.max() < plain.max() and spread.min() >= plain.min()
    assert spread[0] < plain[0] and spread[1] > plain[1]  # the 5000-ring gives, the 50-ring gets


def test_hierarchy_levels_cluster_the_centroids_and_resume(tmp_path):
    x, _ = blobs(k=4, per=50)
    tree = cluster_tree(x, [12, 4], tmp_path, n_init=1, progress=False)
    assert len(tree.assign[0]) == 200 and len(tree.assign[1]) == 12
    assert tree.sizes(2).sum() == 200 and len(tree.centroids[1]) == 4
    again = cluster_tree(x, [12, 4], tmp_path, n_init=1, progress=False)  # read back
    assert all(np.array_equal(a, b) for a, b in zip(tree.assign, again.assign, strict=True))
