"""Connected components of a graph given as edge lists: union-find (union by size, path
halving), then one vectorised pass of pointer jumping to label every node.

The edges of a k-NN duplicate graph arrive in chunks; `UnionFind` takes them as they come
and holds only two int arrays of the node count (on disk via memmap at a billion nodes).
"""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over nodes 0..n-1."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]  # path halving
            a = parent[a]
        return int(a)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def union_edges(self, src: np.ndarray, dst: np.ndarray) -> None:
        for a, b in zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), strict=True):
            self.union(a, b)

    def labels(self) -> np.ndarray:
        """Component id of every node: 0..C-1, numbered by each component's smallest node."""
        roots = self.parent.copy()
        while True:  # pointer jumping: every node to its root in O(log depth) array passes
            nxt = roots[roots]
            if np.array_equal(nxt, roots):
                break
            roots = nxt
        _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # components in order of their first node
        return order[inverse]


def connected_components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Component label of each of n nodes for the undirected edges src[i] - dst[i]."""
    uf = UnionFind(n)
    pairs = np.unique(np.sort(np.stack([src, dst], 1), axis=1), axis=0)  # a-b and b-a: once
    uf.union_edges(pairs[:, 0], pairs[:, 1])
    return uf.labels()
