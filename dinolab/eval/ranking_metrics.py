"""Average precision of ranked lists, as the revisited Oxford / Paris and Copydays tools count it.

AP is the area under the precision-recall curve by the trapezoid rule (the Holidays package's
`score_ap_from_ranks_1`, also the revisited `compute_ap`): each positive found at 0-based rank
r, the j-th found (0-based), adds a trapezoid of width 1/n_positives between precision j/r
(1 when r = 0) and (j+1)/(r+1). Positives never found add nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def average_precision(positive_ranks: Sequence[int] | np.ndarray, n_positives: int) -> float:
    """Trapezoid AP from the sorted 0-based ranks at which positives were found."""
    ranks = np.asarray(positive_ranks, dtype=np.float64)
    if n_positives <= 0:
        raise ValueError("average precision needs at least one positive.")
    found = np.arange(len(ranks), dtype=np.float64)
    left = np.where(ranks == 0, 1.0, found / np.maximum(ranks, 1))
    right = (found + 1) / (ranks + 1)
    return float(((left + right) / 2).sum() / n_positives)


def positions_without_junk(
    ranking: np.ndarray, positives: np.ndarray, junk: np.ndarray
) -> np.ndarray:
    """Sorted 0-based positions of the positives once the junk images are taken out."""
    pos = np.flatnonzero(np.isin(ranking, positives))
    junk_pos = np.flatnonzero(np.isin(ranking, junk))
    return pos - np.searchsorted(junk_pos, pos, side="left")


def precision_at(positions: np.ndarray, k: int) -> float:
    """The revisited mP@k term: precision at min(k, rank of the last positive), 1-based.

    When every positive sits above k, the revisited code divides by the last positive's rank,
    not by k (a query with 2 positives at ranks 1 and 2 scores 1.0 at k = 10); kept as is.
    """
    one_based = positions + 1
    kq = min(int(one_based.max()), k)
    return float((one_based <= kq).sum() / kq)


def revisited_map(
    rankings: np.ndarray,
    positives: Sequence[np.ndarray],
    junk: Sequence[np.ndarray],
    ks: Sequence[int] = (1, 5, 10),
) -> dict:
    """mAP and mP@k over queries, per-query AP (None for queries without positives; all None
    when no query has one).

    rankings: [n_queries, n_db] database indices, best first. Junk images are removed from
    the ranking before AP; queries without positives are left out of the means.
    """
    aps: list[float | None] = []
    precisions: list[list[float]] = []
    for i, ranking in enumerate(np.asarray(rankings)):
        ok = np.asarray(positives[i], dtype=np.int64)
        if ok.size == 0:
            aps.append(None)
            continue
        pos = positions_without_junk(ranking, ok, np.asarray(junk[i], dtype=np.int64))
        aps.append(average_precision(pos, len(ok)))
        precisions.append([precision_at(pos, k) for k in ks])
    scored = [a for a in aps if a is not None]
    if not scored:  # e.g. a set without hard positives: nothing to score, not an error
        return {"mAP": None, **{f"mP@{k}": None for k in ks}, "n_queries_scored": 0,
                "ap_per_query": aps}  # fmt: skip
    mean_p = np.mean(precisions, axis=0)
    return {
        "mAP": 100 * float(np.mean(scored)),
        **{f"mP@{k}": 100 * float(p) for k, p in zip(ks, mean_p, strict=True)},
        "n_queries_scored": len(scored),
        "ap_per_query": [None if a is None else 100 * a for a in aps],
    }
