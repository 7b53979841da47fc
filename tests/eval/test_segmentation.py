import json

import pytest
import torch

from dinolab.eval.segmentation import LinearSegHead, run_segmentation, seg_loss
from tests.eval.dense_sets import PatchMean, make_segmentation_set

ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def test_head_is_dropout_bn_and_a_small_1x1_conv():
    head = LinearSegHead(16, 5)
    assert isinstance(head.dropout, torch.nn.Dropout2d) and head.dropout.p == 0.1
    assert head.conv.kernel_size == (1, 1) and (head.conv.bias == 0).all()
    assert 0.005 < head.conv.weight.std() < 0.02
    assert head.eval()(torch.randn(2, 16, 3, 4)).shape == (2, 5, 3, 4)


def test_loss_upsamples_to_the_labels_and_ignores_255():
    logits = torch.zeros(1, 2, 2, 2)
    logits[:, 1] = 10.0  # class 1 everywhere
    labels = torch.full((1, 8, 8), 255, dtype=torch.uint8)
    labels[0, :4] = 1
    assert seg_loss(logits, labels) < 1e-3
    labels[0, 0, 0] = 0
    assert seg_loss(logits, labels) > 0.1
    assert seg_loss(logits, torch.full((1, 8, 8), 255, dtype=torch.uint8)) == 0


@pytest.mark.parametrize("mode", ["lin", "ms"])
def test_features_that_encode_the_class_give_miou_near_1(tmp_path, mode):
    train = make_segmentation_set(tmp_path / "train", n=4, seed=0)
    val = make_segmentation_set(tmp_path / "val", n=2, seed=1)
    (train / "classes.json").write_text(json.dumps(["red", "green", "blue"]))
    out = tmp_path / "out"
    r = run_segmentation(PatchMean(), train, val, out, mode=mode, size=32, train_scales=(1.0,),
                         steps=150, lr=1e-2, mean=ZERO, std=ONE, progress=False,
                         cache_dir=tmp_path / "cache")  # fmt: skip
    assert r["scores"]["mIoU"] > 0.9 and r["scores"]["pixel_accuracy"] > 0.95
    assert set(r["per_class_iou"]) == {"red", "green", "blue"}
    assert r["params"]["eval_scales"] == ([1.0] if mode == "lin" else [1.0, 1.32, 1.73, 2.28, 3.0])
    assert json.loads((out / "segment.json").read_text())["mode"] == mode
    assert "IoU per class" in (out / "segment.md").read_text()
    assert (out / "segment.png").stat().st_size > 1000


def test_random_features_do_not_reach_the_oracle(tmp_path):
    """The pipeline scores what the features hold: noise images -> chance-level mIoU."""
    train = make_segmentation_set(tmp_path / "train", n=4, seed=0)
    val = make_segmentation_set(tmp_path / "val", n=2, seed=1)
    for img in (val / "images").iterdir():  # val colours no longer say the class
        from PIL import Image

        Image.open(train / "images" / "im0.png").save(img)
    r = run_segmentation(PatchMean(), train, val, None, size=32, train_scales=(1.0,), steps=50,
                         lr=1e-2, mean=ZERO, std=ONE, progress=False)  # fmt: skip
    assert r["scores"]["mIoU"] < 0.8


def test_unknown_mode_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="use lin or ms"):
        run_segmentation(PatchMean(), tmp_path, tmp_path, mode="x", mean=ZERO, std=ONE)
