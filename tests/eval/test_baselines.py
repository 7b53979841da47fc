import torch

from dinolab.config.loader import load_config
from dinolab.eval.baselines import knn_baselines, raw_pixel_features

from .conftest import TINY_MODEL


def test_raw_pixels_are_centred_unit_vectors(folders):
    out = raw_pixel_features(folders / "train", size=8)
    assert out["features"].shape == (12, 8 * 8 * 3)
    assert out["classes"] == ["a", "b"] and out["labels"].tolist() == [0] * 6 + [1] * 6
    assert torch.allclose(out["features"].norm(dim=1), torch.ones(12), atol=1e-5)
    assert out["features"].mean(dim=1).abs().max() < 1e-6


def test_knn_baselines_score_both(folders):
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", "train.precision=fp32"])
    out = knn_baselines(cfg, folders / "train", folders / "val", k=3, progress=False)
    assert set(out) == {"raw pixels", "random init"}
    for s in out.values():
        assert 0.0 <= s["top1"] <= s["top5"] <= 100.0
