"""Trapezoid AP and the revisited mAP / mP@k on hand-made rankings, and against a plain walk."""

import numpy as np
import pytest

from dinolab.eval.ranking_metrics import (
    average_precision,
    positions_without_junk,
    precision_at,
    revisited_map,
)


def test_two_positives_at_ranks_0_and_2():
    # trapezoids: (1 + 1) / 2 and (1/2 + 2/3) / 2, each of width 1/2
    assert average_precision([0, 2], 2) == pytest.approx((1 + (0.5 + 2 / 3) / 2) / 2)


def test_trapezoid_rule_not_precision_at_hits():
    # one positive at rank 1: precision goes 0 -> 1/2; the trapezoid is 1/4, not 1/2
    assert average_precision([1], 1) == pytest.approx(0.25)
    assert average_precision([0], 1) == 1.0


def test_positives_not_found_count_as_zero():
    assert average_precision([0], 2) == pytest.approx(0.5)
    assert average_precision([], 3) == 0.0


def test_junk_before_a_positive_is_removed():
    ranking = np.array([7, 3, 5, 1])  # junk 7 first, then positive 3
    pos = positions_without_junk(ranking, positives=np.array([3]), junk=np.array([7]))
    assert pos.tolist() == [0]
    result = revisited_map(ranking[None], [np.array([3])], [np.array([7])])
    assert result["mAP"] == pytest.approx(100.0)
    # junk after the positive changes nothing; without the junk list the AP is 1/4
    assert revisited_map(ranking[None], [np.array([3])], [np.array([])])["mAP"] == 25.0


def test_query_without_positives_is_left_out():
    rankings = np.array([[0, 1, 2], [2, 1, 0]])
    result = revisited_map(rankings, [np.array([1]), np.array([], dtype=int)], [[], []])
    assert result["ap_per_query"] == [25.0, None]
    assert result["mAP"] == 25.0 and result["n_queries_scored"] == 1
    empty = revisited_map(rankings, [[], []], [[], []], ks=(1,))
    assert empty == {"mAP": None, "mP@1": None, "n_queries_scored": 0, "ap_per_query": [None] * 2}


def test_precision_at_k_follows_the_revisited_rule():
    # positives at 1-based ranks 1 and 2: P@1 = 1, P@5 = P@10 = 2/2 (k capped at the last hit)
    pos = np.array([0, 1])
    assert [precision_at(pos, k) for k in (1, 5, 10)] == [1.0, 1.0, 1.0]
    pos = np.array([1, 4])  # ranks 2 and 5
    assert [precision_at(pos, k) for k in (1, 5, 10)] == [0.0, 0.4, 0.4]


def _walk(ranking, ok, junk, ks):
    """Reference: drop junk from the list, then walk it accumulating trapezoids."""
    kept = [x for x in ranking if x not in set(junk)]
    hits, ap, positions = 0, 0.0, []
    for r, x in enumerate(kept):
        if x in set(ok):
            before = 1.0 if r == 0 else hits / r
            hits += 1
            ap += (before + hits / (r + 1)) / 2 / len(ok)
            positions.append(r + 1)
    last = max(positions)
    prec = [sum(p <= min(last, k) for p in positions) / min(last, k) for k in ks]
    return ap, prec


def test_matches_a_plain_walk_on_random_rankings():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 40))
        labels = rng.integers(0, 3, n)  # 0 negative, 1 positive, 2 junk
        labels[rng.integers(n)] = 1
        ranking = rng.permutation(n)
        ok, junk = np.flatnonzero(labels == 1), np.flatnonzero(labels == 2)
        result = revisited_map(ranking[None], [ok], [junk], ks=(1, 5, 10))
        ap, prec = _walk(ranking.tolist(), ok.tolist(), junk.tolist(), (1, 5, 10))
        assert result["mAP"] == pytest.approx(100 * ap)
        assert [result[f"mP@{k}"] for k in (1, 5, 10)] == pytest.approx([100 * p for p in prec])
