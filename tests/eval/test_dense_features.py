import numpy as np
import torch
from PIL import Image

from dinolab.eval.dense_features import (
    extract_dense_features,
    image_feature_map,
    scaled_size,
    window_starts,
)
from tests.eval.dense_sets import PatchMean

ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def test_scaled_size_keeps_the_aspect_on_patch_multiples():
    assert scaled_size(48, 64, 32, 1.0, 8) == (32, 40)  # 42.7 -> 40
    assert scaled_size(48, 64, 32, 2.0, 8) == (64, 88)
    assert scaled_size(10, 10, 32, 0.1, 8) == (8, 8)  # never below one patch


def test_windows_cover_the_image_on_patch_boundaries():
    assert window_starts(32, 0, 8) == [0]
    assert window_starts(32, 32, 8) == [0]
    starts = window_starts(80, 32, 8)
    assert starts[0] == 0 and starts[-1] == 48 and all(s % 8 == 0 for s in starts)


def test_sliding_windows_equal_the_whole_image_for_a_local_backbone():
    x = torch.rand(3, 40, 56)
    whole = image_feature_map(PatchMean(), x)
    slid = image_feature_map(PatchMean(), x, window=24)
    assert torch.allclose(whole, slid, atol=1e-6)


def _image(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (4, 6, 3)).astype(np.uint8)  # 4 x 6 blocks of colour
    path = tmp_path / "a.png"
    Image.fromarray(small).resize((48, 32), Image.NEAREST).save(path)
    return path


def test_multi_scale_maps_align_with_the_single_scale_map(tmp_path):
    feats = extract_dense_features(PatchMean(), [_image(tmp_path)], 32, scales=(1.0, 2.0),
                                   flips=(False, True), mean=ZERO, std=ONE,
                                   progress=False)  # fmt: skip
    one, two = feats.get(0, 0), feats.get(0, 1)
    assert one.shape == (3, 4, 6) and two.shape == (3, 8, 12)
    pooled = torch.nn.functional.avg_pool2d(two[None], 2)[0]  # 2x2 cells of scale 2 = 1 cell
    assert (pooled - one).abs().max() < 0.05
    assert torch.allclose(feats.get(0, 0, True).flip(-1), one, atol=1e-6)


def test_cache_is_reused_and_equal(tmp_path):
    path = _image(tmp_path)
    kw = dict(scales=(1.0,), mean=ZERO, std=ONE, progress=False, cache_dir=tmp_path / "c")
    first = extract_dense_features(PatchMean(), [path], 32, **kw)
    entries = list((tmp_path / "c").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    again = extract_dense_features(PatchMean(), [path], 32, **kw)
    assert torch.equal(first.get(0), again.get(0))
    other = extract_dense_features(PatchMean(), [path], 24, **kw)  # another size: new entry
    assert len(list((tmp_path / "c").iterdir())) == 2 and other.get(0).shape == (3, 3, 4)
