import pytest
import torch

from dinolab.eval.dense_features import DenseFeatures
from dinolab.eval.dense_probe import CropSampler, lr_factor, resized_target


def test_lr_factor_warms_up_then_follows_a_cosine_to_zero():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)


def test_crops_keep_features_and_targets_aligned_and_pad_small_maps():
    fmap = torch.arange(2 * 3, dtype=torch.float32).reshape(1, 2, 3)  # 2 x 3 cells, patch 2
    target = torch.arange(4 * 6).reshape(4, 6)
    feats = DenseFeatures({(0, 0, False): fmap}, [1.0], [False])
    sampler = CropSampler(feats, lambda i, s, f: target, 1, crop_cells=4, patch=2, pad=255)
    x, t = sampler(2)
    assert x.shape == (2, 1, 4, 4) and t.shape == (2, 8, 8)
    assert torch.equal(x[0, 0, :2, :3], fmap[0]) and (x[0, 0, 2:] == 0).all()
    assert torch.equal(t[0, :4, :6], target) and (t[0, 4:] == 255).all()


def test_resized_target_uses_nearest_and_mirrors():
    import numpy as np

    labels = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    out = resized_target(labels, (4, 4), flip=True, dtype=torch.uint8)
    assert out.tolist() == [[2, 2, 1, 1], [2, 2, 1, 1], [4, 4, 3, 3], [4, 4, 3, 3]]


def test_cached_targets_fit_each_map_and_are_resized_once(monkeypatch):
    import numpy as np

    from dinolab.eval import dense_probe

    maps = {(0, 0, False): torch.zeros(1, 2, 2), (0, 1, True): torch.zeros(1, 3, 3)}
    feats = DenseFeatures(maps, [1.0, 1.5], [False, True])
    calls = []
    real = dense_probe.resized_target
    monkeypatch.setattr(dense_probe, "resized_target", lambda *a: calls.append(a[1:3]) or real(*a))
    target_of = dense_probe.cached_targets([np.eye(4, dtype=np.uint8)], feats, 4, torch.uint8)
    assert target_of(0, 0, False).shape == (8, 8) and target_of(0, 1, True).shape == (12, 12)
    assert torch.equal(target_of(0, 1, True), target_of(0, 1, True))
    assert calls == [((8, 8), False), ((12, 12), True)]  # each (image, scale, flip) once
