"""DAVIS J and F on hand-made masks, the official statistics, first / last frame exclusion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dinolab.eval.davis_metrics import (
    boundary_f_measure,
    boundary_map,
    boundary_tolerance,
    dilate,
    disk,
    region_similarity,
    score_sequence,
    statistics,
    summarise,
)


def square(top, left, side=10, shape=(100, 100)):
    m = np.zeros(shape, dtype=bool)
    m[top : top + side, left : left + side] = True
    return m


def test_j_identical_shifted_empty_and_void():
    a = square(20, 20)
    assert region_similarity(a, a) == 1.0
    assert region_similarity(a, square(20, 25)) == pytest.approx(50 / 150)  # 5 of 10 columns
    empty = np.zeros_like(a)
    assert region_similarity(empty, empty) == 1.0
    assert region_similarity(a, empty) == 0.0
    void = np.zeros_like(a)
    void[20:30, 30:35] = True  # the part of the prediction outside the object is void
    assert region_similarity(a, square(20, 25), void) == pytest.approx(50 / 100)


def test_boundary_map_of_a_3x3_square_as_seg2bmap_draws_it():
    seg = np.zeros((6, 6), dtype=bool)
    seg[1:4, 1:4] = True
    expected = {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (2, 0), (3, 0), (1, 3), (2, 3), (3, 3),
                (3, 1), (3, 2)}  # fmt: skip
    assert {tuple(p) for p in np.argwhere(boundary_map(seg))} == expected


def test_disk_and_dilation():
    assert disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).sum() == 13
    point = np.zeros((9, 9), dtype=bool)
    point[4, 4] = True
    np.testing.assert_array_equal(dilate(point, 2)[2:7, 2:7], disk(2))
    assert dilate(point, 2).sum() == 13


def test_disk_is_skimages_disk():
    morphology = pytest.importorskip("skimage.morphology")
    for r in (1, 2, 5, 8):
        np.testing.assert_array_equal(disk(r), morphology.disk(r).astype(bool))


def test_tolerance_is_ceil_of_0008_times_the_diagonal():
    assert boundary_tolerance((480, 854)) == math.ceil(0.008 * math.hypot(480, 854)) == 8
    assert boundary_tolerance((100, 100)) == 2
    assert boundary_tolerance((100, 100), bound_th=3) == 3


def test_f_identical_and_a_one_pixel_shift_inside_the_tolerance():
    a = square(20, 20, side=30)
    assert boundary_f_measure(a, a) == 1.0
    assert boundary_f_measure(a, square(21, 20, side=30)) == 1.0  # 1 px <= 2 px tolerance
    assert boundary_f_measure(a, square(60, 60, side=30)) == 0.0  # far apart: nothing matches


def test_f_empty_masks():
    a, empty = square(20, 20), np.zeros((100, 100), dtype=bool)
    assert boundary_f_measure(empty, empty) == 1.0
    assert boundary_f_measure(a, empty) == 0.0
    assert boundary_f_measure(empty, a) == 0.0


def brute_force_f(gt, pred, r):
    """F from Euclidean distances between boundary pixels (no dilation)."""
    bg, bp = np.argwhere(boundary_map(gt)), np.argwhere(boundary_map(pred))
    d = np.sqrt(((bg[:, None, :] - bp[None, :, :]) ** 2).sum(-1))
    precision = np.mean(d.min(axis=0) <= r)
    recall = np.mean(d.min(axis=1) <= r)
    return 2 * precision * recall / (precision + recall)


def test_f_of_a_known_shifted_square_equals_a_brute_force_count():
    gt, pred = square(20, 20, side=20), square(23, 24, side=20)  # 3 down, 4 right
    # tolerance 2 px: the shared parts of the outlines match, the shifted sides do not
    f = boundary_f_measure(gt, pred)
    assert f == pytest.approx(brute_force_f(gt, pred, 2))
    assert 0.0 < f < 1.0


def test_statistics_mean_recall_and_decay_by_hand():
    v = [0.2, 0.4, 0.6, 0.8, 1.0, 0.9, 0.7, 0.3]
    s = statistics(v)
    assert s["mean"] == pytest.approx(0.6125)
    assert s["recall"] == pytest.approx(5 / 8)
    # bins: round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7] -> first v[0:3], last v[5:8]
    assert s["decay"] == pytest.approx(0.4 - (0.9 + 0.7 + 0.3) / 3)


def test_first_and_last_frames_are_not_scored():
    gt = np.stack([square(20, 20)] * 5).astype(np.uint8)
    pred = gt.copy()
    pred[0], pred[-1] = 0, 0  # wrong only where DAVIS does not look
    scores = score_sequence(gt, pred)
    assert scores[1]["J"] == [1.0, 1.0, 1.0] and scores[1]["F"] == [1.0, 1.0, 1.0]
    pred[2] = 0
    assert score_sequence(gt, pred)[1]["J"] == [1.0, 0.0, 1.0]


def test_two_objects_and_void_counted_as_background():
    a, b = square(10, 10), square(50, 50)
    gt = np.stack([a * 1 + b * 2] * 4).astype(np.uint8)
    pred = gt.copy()
    pred[1:3][np.stack([b] * 2)] = 0  # object 2 lost in the scored frames
    per = score_sequence(gt, pred)
    assert set(per) == {1, 2} and per[1]["J_stats"]["mean"] == 1.0
    assert per[2]["J_stats"]["mean"] == 0.0
    s = summarise({"two": per})
    assert s["J-Mean"] == 0.5 and s["J&F-Mean"] == pytest.approx((s["J-Mean"] + s["F-Mean"]) / 2)
    void = gt.copy()
    void[:, 60:70, 0:10] = 255  # void in gt: a prediction there is a false positive
    pred = np.where(void == 255, 1, gt).astype(np.uint8)
    assert score_sequence(void, pred)[1]["J"][0] == pytest.approx(100 / 200)


def test_shapes_and_lengths_are_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        score_sequence(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="at least 3 frames"):
        score_sequence(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
