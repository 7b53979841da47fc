import numpy as np
import pytest

from dinolab.curate.hierarchy import ClusterTree
from dinolab.curate.sampling import sample_tree, water_fill


def test_water_fill_hits_the_target_exactly_and_respects_capacities():
    rng = np.random.default_rng(0)
    for _ in range(200):
        cap = rng.integers(0, 50, int(rng.integers(1, 30)))
        target = int(rng.integers(0, cap.sum() + 1))
        q = water_fill(cap, target, rng)
        assert q.sum() == target and (q <= cap).all() and (q >= 0).all()
        under = q < cap  # a cluster not taken whole gets at least every other quota - 1
        if under.any():
            assert q[under].min() >= q.max() - 1


def test_water_fill_refuses_a_target_above_the_pool():
    with pytest.raises(ValueError, match="Cannot sample 11 images from 10"):
        water_fill(np.array([4, 6]), 11, np.random.default_rng(0))


def _tree(rng) -> ClusterTree:
    """Random 2-level tree: 200 images in 12 clusters in 3 top clusters (long-tailed)."""
    sizes = [90, 40, 20, 10, 10, 8, 6, 5, 4, 3, 2, 2]
    level1 = np.repeat(np.arange(12), sizes)
    rng.shuffle(level1)
    level2 = np.array([0, 0, 1, 0, 1, 2, 2, 1, 2, 2, 1, 0])
    return ClusterTree([level1, level2], [rng.normal(size=(12, 4)), rng.normal(size=(3, 4))])


@pytest.mark.parametrize("multiplier", [1.0, 2.5])
@pytest.mark.parametrize("strategy", ["random", "closest"])
def test_hierarchical_sampling_hits_target_and_never_exceeds_size_times_multiplier(
    strategy, multiplier
):
    import torch

    rng = np.random.default_rng(1)
    tree = _tree(rng)
    emb = torch.randn(200, 4)
    sizes = np.bincount(tree.assign[0])
    for target in (1, 37, 120, 200, int(np.floor(sizes * multiplier).sum())):
        picked = sample_tree(tree, target, strategy, multiplier, seed=2, embeddings=emb)
        assert len(picked) == target
        taken = np.bincount(tree.assign[0][picked], minlength=12)
        assert (taken <= np.floor(sizes * multiplier)).all()
        if multiplier == 1.0:
            assert len(np.unique(picked)) == target  # no repeats
    picked = sample_tree(tree, 60, strategy, 1.0, seed=0, embeddings=emb)
    top = np.bincount(tree.assign[1][tree.assign[0][picked]], minlength=3)
    assert top.tolist() == [20, 20, 20]  # every top cluster holds >= 20 images


def test_closest_strategy_takes_the_images_nearest_the_centroid():
    import torch

    tree = ClusterTree([np.zeros(5, dtype=np.int64)], [np.zeros((1, 1))])
    emb = torch.tensor([[3.0], [0.1], [-2.0], [0.5], [-0.2]])
    assert sorted(sample_tree(tree, 3, "closest", embeddings=emb).tolist()) == [1, 3, 4]
