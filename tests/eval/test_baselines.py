import torch

from dinolab.config.loader import load_config
from dinolab.eval.baselines import compare_with_baselines, raw_pixel_features
from dinolab.eval.logreg import logreg_holdout

from .conftest import TINY_MODEL


def test_raw_pixels_are_centred_unit_vectors(folders):
    out = raw_pixel_features(folders / "train", size=8)
    assert out["features"].shape == (12, 8 * 8 * 3)
    assert out["classes"] == ["a", "b"] and out["labels"].tolist() == [0] * 6 + [1] * 6
    assert torch.allclose(out["features"].norm(dim=1), torch.ones(12), atol=1e-5)
    assert out["features"].mean(dim=1).abs().max() < 1e-6


def test_holdout_logreg_separates_and_picks_c_on_train_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()
    train = {"features": x[:150], "labels": y[:150], "classes": ["neg", "pos"]}
    test = {"features": x[150:], "labels": y[150:], "classes": ["neg", "pos"]}
    out = logreg_holdout(train, test)
    assert out["top1"] >= 95.0 and out["C"] > 0


def test_compare_scores_all_three(folders, backbone):
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", "train.precision=fp32"])
    out = compare_with_baselines(cfg, backbone, folders / "train", folders / "val", k=3,
                                 progress=False, num_workers=0)  # fmt: skip
    assert set(out) == {"raw pixels", "random init", "trained"}
    for s in out.values():
        assert 0.0 <= s["knn_top1"] <= s["knn_top5"] <= 100.0
        assert 0.0 <= s["linear_top1"] <= 100.0
