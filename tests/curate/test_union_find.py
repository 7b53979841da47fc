import numpy as np

from dinolab.curate.union_find import UnionFind, connected_components


def _brute_force(n: int, src, dst) -> np.ndarray:
    """Components by repeated graph search: label = smallest node reachable."""
    adj = {i: set() for i in range(n)}
    for a, b in zip(src, dst, strict=True):
        adj[a].add(b)
        adj[b].add(a)
    label = -np.ones(n, dtype=np.int64)
    for start in range(n):
        if label[start] >= 0:
            continue
        stack = [start]
        while stack:
            v = stack.pop()
            if label[v] < 0:
                label[v] = start
                stack.extend(adj[v])
    return label


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_components_equal_a_brute_force_search_on_random_graphs():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(1, 60))
        m = int(rng.integers(0, 2 * n))
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        labels = connected_components(n, src, dst)
        assert _same_partition(labels, _brute_force(n, src, dst)), trial
        assert labels.max(initial=-1) + 1 == len(set(labels.tolist()))  # 0..C-1


def test_labels_are_numbered_by_first_node_and_unions_are_idempotent():
    uf = UnionFind(5)
    uf.union(3, 4)
    uf.union(4, 3)
    uf.union(1, 3)
    assert uf.labels().tolist() == [0, 1, 2, 1, 1]
    assert uf.size[uf.find(4)] == 3
