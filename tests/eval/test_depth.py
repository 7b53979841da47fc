import json

import pytest
import torch

from dinolab.eval.depth import LinearDepthHead, bin_probabilities, run_depth, silog_loss
from tests.eval.dense_sets import PatchMean, make_depth_set

ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def test_bin_probabilities_sum_to_one_and_keep_a_floor():
    p = bin_probabilities(torch.randn(2, 256, 3, 4) * 5)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, 3, 4), atol=1e-6)
    assert (p > 0).all()


def test_head_predicts_inside_the_bin_range_at_4x_the_grid():
    head = LinearDepthHead(8, 0.5, 10.0).eval()
    assert head.centres[0] == 0.5 and head.centres[-1] == 10.0 and len(head.centres) == 256
    out = head(torch.randn(2, 8, 3, 5))
    assert out.shape == (2, 1, 12, 20) and (out >= 0.5).all() and (out <= 10.0).all()


def test_silog_is_zero_for_exact_depth_and_scale_invariant_after_warm_up():
    gt = torch.rand(1, 8, 8) * 5 + 1
    gt[0, 0, 0] = 0  # invalid: left out
    pred = gt.clone()[:, None]
    pred[0, 0, 0, 0] = 3.0
    assert silog_loss(pred, gt, step=200) < 1e-5
    scaled = float(silog_loss(pred * 2, gt, step=200))
    assert scaled == pytest.approx(0.15**0.5 * float(torch.log(torch.tensor(2.0))), rel=1e-4)
    assert float(silog_loss(pred * 2, gt, step=0)) == pytest.approx(scaled, rel=1e-4)
    varied = pred * torch.linspace(1, 2, 8)
    assert silog_loss(varied, gt, step=200) > silog_loss(varied, gt, step=0)


@pytest.mark.parametrize("mode", ["lin1", "lin4"])
def test_features_that_encode_depth_give_rmse_near_0(tmp_path, mode):
    train = make_depth_set(tmp_path / "train", n=4, seed=0)
    val = make_depth_set(tmp_path / "val", n=2, seed=1, png=True)
    out = tmp_path / "out"
    r = run_depth(PatchMean(), train, val, out, mode=mode, size=32, steps=300, lr=0.1,
                  mean=ZERO, std=ONE, progress=False)  # fmt: skip
    s = r["scores"]
    assert s["rmse"] < 0.25 and s["d1"] > 0.95, s  # depth spans 1 to 6.4 m; 100 steps warm-up
    assert json.loads((out / "depth.json").read_text())["params"]["feature_dim"] == 6
    assert (out / "depth.png").stat().st_size > 1000


def test_bad_depth_range_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="0 < min depth < max depth"):
        run_depth(PatchMean(), tmp_path, tmp_path, max_depth=0.0, mean=ZERO, std=ONE)


def test_head_order_equals_upsampling_the_features_first_at_eval():
    head = LinearDepthHead(8, 0.5, 10.0)
    torch.nn.init.normal_(head.conv.weight, 0, 1.0)
    head.bn.running_mean.normal_()
    head.eval()
    x = torch.randn(2, 8, 3, 5)
    up = torch.nn.functional.interpolate(x, size=(12, 20), mode="bilinear", align_corners=False)
    logits = head.conv(head.bn(up))
    first = (bin_probabilities(logits) * head.centres[None, :, None, None]).sum(1, keepdim=True)
    assert torch.allclose(head(x), first, atol=1e-4)
