import numpy as np
import pytest

from dinolab.eval.segmentation_metrics import ConfusionHistogram


def test_scores_match_a_hand_count_with_ignore_and_an_absent_class():
    # classes 0, 1, 2, 3; class 3 appears nowhere (absent: left out of the mean)
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 3, 0]])  # the 255 pixels' predictions count nowhere
    hist = ConfusionHistogram(4)
    hist.add(pred, gt)
    s = hist.scores()
    # class 0: inter 1, gt 2, pred 2 -> 1/3; class 1: inter 2, gt 2, pred 3 -> 2/3;
    # class 2: inter 1, gt 2, pred 1 -> 1/2; class 3: never seen outside ignore -> absent
    assert s["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2, None])
    assert s["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    assert s["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_histogram_accumulates_over_images_not_an_average_of_per_image_ious():
    hist = ConfusionHistogram(2)
    hist.add(np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 1]]))  # class 1 missed
    hist.add(np.array([[1]]), np.array([[1]]))
    s = hist.scores()
    # class 0: inter 3, union 4; class 1: inter 1, union 2 (summed over both images)
    assert s["per_class_iou"] == pytest.approx([3 / 4, 1 / 2])


def test_a_class_predicted_but_absent_from_the_ground_truth_counts_as_zero():
    hist = ConfusionHistogram(3)
    hist.add(np.array([[0, 2]]), np.array([[0, 0]]))
    s = hist.scores()
    assert s["per_class_iou"] == pytest.approx([1 / 2, None, 0.0])
    assert s["mIoU"] == pytest.approx(1 / 4)


def test_shape_mismatch_is_one_sentence():
    with pytest.raises(ValueError, match="differ"):
        ConfusionHistogram(2).add(np.zeros((2, 2)), np.zeros((2, 3)))
