"""`curate dedup`: exact copies by content hash, then near copies by a cosine k-NN graph.

As DINOv2 (section 3): edges join images whose cosine similarity is above a threshold among
their k = 64 nearest neighbours (0.6 within the pool); connected components (union-find) are
groups of copies and one representative (the first in row order) stays. Against evaluation
sets (`against`, threshold 0.45) every component that touches an evaluation image is dropped
whole, so no near copy of a test image is trained on.

`whiten`: PCA whitening (`eval.whitening`, power 0.5 by default, the first N principal
directions kept) learned on the pool itself or on a separate embedding folder, as DINO's copy
detection does; it is saved as whitening.pt in the output folder and applied the same way to
the `against` sets (and, passed back as `whiten_on`, to a later run). Whitened cosines are
lower than raw ones: measure the threshold (benchmarks/RESULTS.md, Data curation).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dinolab.curate.knn_search import knn_to_disk
from dinolab.curate.store import Selection, open_selection, write_stage
from dinolab.curate.union_find import UnionFind
from dinolab.eval.whitening import PCAWhitening

SELF_THRESHOLD = 0.6
AGAINST_THRESHOLD = 0.45


def first_of_each_hash(hashes: np.ndarray) -> np.ndarray:
    """Bool mask: True for the first row of each content hash (unread files, zero hash, kept)."""
    keep = np.ones(len(hashes), dtype=bool)
    _, first = np.unique(hashes, return_index=True)
    keep[:] = False
    keep[first] = True
    keep[hashes == bytes(20)] = True
    return keep


WHITENING = "whitening.pt"


def fit_whitening(
    x: torch.Tensor, dims: int | None = None, power: float = 0.5, source: str = "pool"
) -> dict:
    """PCA whitening of the rows of `x` keeping the first `dims` directions (None: all)."""
    w = PCAWhitening.fit(x, power=power)
    keep = w.projection.shape[0] if dims is None else max(1, min(int(dims), len(w.projection)))
    return {"mean": w.mean, "projection": w.projection[:keep].contiguous(), "power": power,
            "n_floored": w.n_floored, "source": source}  # fmt: skip


def apply_whitening(whitening: dict, x: torch.Tensor) -> torch.Tensor:
    """Whitened, re-normalised rows (the dimension the whitening was fitted on is checked)."""
    if x.shape[1] != whitening["mean"].shape[0]:
        raise ValueError(
            f"the whitening was learned on {whitening['mean'].shape[0]}-d embeddings and these "
            f"are {x.shape[1]}-d: learn it on embeddings of the same model and descriptor."
        )
    return F.normalize((x.float() - whitening["mean"]) @ whitening["projection"].T, dim=1)


def load_whitening(source: str | Path, dims: int | None, power: float) -> dict:
    """A saved whitening.pt as it is, or one learned on an embedding folder's rows."""
    path = Path(source)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return {**saved, "source": f"{path} (learned on {saved['source']})"}
    return fit_whitening(open_selection(path).embeddings(), dims, power, str(path))


def threshold_edges(sims: np.ndarray, idx: np.ndarray, threshold: float):
    """(src, dst) of the k-NN entries with similarity >= threshold (src = the query row)."""
    rows, cols = np.nonzero(sims >= threshold)
    return rows.astype(np.int64), idx[rows, cols].astype(np.int64)


def duplicate_components(
    x: torch.Tensor,
    against: list[torch.Tensor] = (),
    k: int = 64,
    threshold: float = SELF_THRESHOLD,
    against_threshold: float = AGAINST_THRESHOLD,
    work_dir: str | Path = ".",
    chunk_size: int = 4096,
    backend: str = "auto",
    progress: bool = True,
) -> dict:
    """Components over the pool (and the `against` sets appended as extra nodes).

    Returns {"labels" (pool rows), "touches_eval" (bool per pool row), "edges", "eval_edges"}.
    """
    n = len(x)
    offsets = np.cumsum([n, *[len(e) for e in against]])
    uf = UnionFind(int(offsets[-1]))
    sims, idx = knn_to_disk(x, None, k, work_dir, "self", chunk_size, backend, progress)
    src, dst = threshold_edges(sims, idx, threshold)
    uf.union_edges(src, dst)
    eval_edges = 0
    for j, e in enumerate(against):
        sims, idx = knn_to_disk(x, e, k, work_dir, f"against{j}", chunk_size, backend, progress)
        a_src, a_dst = threshold_edges(sims, idx, against_threshold)
        uf.union_edges(a_src, a_dst + offsets[j])
        eval_edges += len(a_src)
    labels = uf.labels()
    eval_components = np.unique(labels[n:])
    return {
        "labels": labels[:n],
        "touches_eval": np.isin(labels[:n], eval_components),
        "edges": int(len(src)),
        "eval_edges": eval_edges,
    }


def representatives(labels: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Positions kept: the first of each component, none of a dropped one."""
    _, first = np.unique(labels, return_index=True)
    keep = np.zeros(len(labels), dtype=bool)
    keep[first] = True
    return np.flatnonzero(keep & ~drop)


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    bins = [(2, 2), (3, 5), (6, 10), (11, 100), (101, None)]
    out = {}
    for lo, hi in bins:
        name = f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi else f">{lo - 1}")
        out[name] = int(np.count_nonzero((sizes >= lo) & (sizes <= (hi or np.inf))))
    return out


def dedup(
    pool: Selection,
    out_dir: str | Path,
    against: list[Selection] = (),
    k: int = 64,
    threshold: float = SELF_THRESHOLD,
    against_threshold: float = AGAINST_THRESHOLD,
    chunk_size: int = 4096,
    backend: str = "auto",
    progress: bool = True,
    figure_groups: int = 8,
    center: bool = False,
    whiten: int | str | None = None,
    whiten_on: str | Path | None = None,
    whiten_power: float = 0.5,
) -> dict:
    """Run both passes on `pool`, write the stage folder (+ duplicate_groups.png); the report.

    `whiten`: dimensions kept by the PCA whitening ("all" or an int; None: no whitening),
    learned on `whiten_on` (an embedding folder, or a saved whitening.pt) or on the pool."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    if whiten is not None and center:
        raise ValueError("--whiten centres the embeddings already: give --center or --whiten.")
    exact_keep = first_of_each_hash(pool.hashes())
    rows = pool.rows[exact_keep]
    stage = Selection(pool.store, rows)
    x, evals = stage.embeddings(), [a.embeddings() for a in against]
    if center:  # weak or small models: every cosine is high until the common mean is removed
        mean = x.mean(0)
        x, evals = F.normalize(x - mean, dim=1), [F.normalize(e - mean, dim=1) for e in evals]
    whitening = None
    if whiten is not None:
        dims = None if whiten == "all" else int(whiten)
        if whiten_on is None:
            whitening = fit_whitening(x, dims, whiten_power)
        else:
            whitening = load_whitening(whiten_on, dims, whiten_power)
        x, evals = apply_whitening(whitening, x), [apply_whitening(whitening, e) for e in evals]
        out.mkdir(parents=True, exist_ok=True)
        torch.save(whitening, out / WHITENING)
    found = duplicate_components(
        x,
        evals,
        k,
        threshold,
        against_threshold,
        out / "knn",
        chunk_size,
        backend,
        progress,
    )
    labels = found["labels"]
    kept = representatives(labels, found["touches_eval"])
    sizes = np.bincount(labels)
    groups = np.flatnonzero(sizes > 1)
    report = {
        "input": int(len(pool)),
        "exact_duplicates_removed": int(len(pool) - len(rows)),
        "near_duplicate_groups": int(len(groups)),
        "near_duplicates_removed": int(sizes[groups].sum() - len(groups)),
        "eval_overlap_images": int(np.count_nonzero(found["touches_eval"])),
        "eval_overlap_groups": int(len(np.unique(labels[found["touches_eval"]]))),
        "group_sizes": size_histogram(sizes),
        "largest_groups": sorted(sizes[groups].tolist(), reverse=True)[:10],
        "k": k,
        "threshold": threshold,
        "against_threshold": against_threshold,
        "center": center,
        "whiten_dims": None if whitening is None else int(whitening["projection"].shape[0]),
        "whiten_on": None if whitening is None else whitening["source"],
        "whiten_power": None if whitening is None else whitening["power"],
        "whiten_floored": None if whitening is None else whitening["n_floored"],
        "edges": found["edges"],
        "eval_edges": found["eval_edges"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    report = write_stage(out, pool.store, rows[kept], report)
    np.save(out / "components.npy", labels)
    if len(groups) and figure_groups:
        from dinolab.curate.figures import duplicate_groups_figure

        paths = stage.paths()
        largest = groups[np.argsort(-sizes[groups], kind="stable")][:figure_groups]
        members = [[paths[i] for i in np.flatnonzero(labels == g)[:8]] for g in largest]
        duplicate_groups_figure(members, out / "duplicate_groups.png")
    return report
