import math

import pytest
import torch

from dinolab.eval.depth_metrics import depth_scores, mean_scores


def test_scores_match_hand_computations_on_valid_pixels():
    gt = torch.tensor([[1.0, 2.0], [0.0, 20.0]])  # 0 invalid, 20 beyond max_depth 10
    pred = torch.tensor([[1.5, 2.0], [5.0, 5.0]])
    s = depth_scores(pred, gt, max_depth=10.0)
    # valid pixels: (pred 1.5, gt 1) and (2, 2)
    assert s["rmse"] == pytest.approx(math.sqrt(0.25 / 2))
    assert s["abs_rel"] == pytest.approx(0.5 / 2)
    assert s["sq_rel"] == pytest.approx(0.25 / 2)
    assert s["rmse_log"] == pytest.approx(math.sqrt(math.log(1.5) ** 2 / 2))
    assert s["log10"] == pytest.approx(math.log10(1.5) / 2)
    # ratio 1.5: above 1.25, below 1.25^2 = 1.5625
    assert (s["d1"], s["d2"], s["d3"]) == pytest.approx((0.5, 1.0, 1.0))


def test_predictions_are_clamped_into_the_depth_range():
    s = depth_scores(torch.tensor([0.0, 30.0]), torch.tensor([1.0, 10.0]), 0.5, 10.0)
    assert s["rmse"] == pytest.approx(math.sqrt(0.5**2 / 2))  # 0 -> 0.5, 30 -> 10


def test_mean_over_images_skips_images_without_valid_pixels():
    a = depth_scores(torch.ones(2, 2), torch.ones(2, 2))
    b = depth_scores(torch.full((2, 2), 2.0), torch.ones(2, 2))
    assert depth_scores(torch.ones(2, 2), torch.zeros(2, 2)) is None
    m = mean_scores([a, None, b])
    assert m["images"] == 2
    assert m["rmse"] == pytest.approx(0.5)
    assert m["d1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="No validation image"):
        mean_scores([None])
