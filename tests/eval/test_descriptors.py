"""Descriptors: DINO's resize rules, GeM, patch fitting, shape batching, multi-scale, cache."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from dinolab.eval.descriptors import (
    SCALES,
    fit_to_patch,
    gem,
    image_descriptors,
    raw_pixel_descriptors,
    resize_long_side,
)

KW = {"precision": "fp32", "progress": False, "mean": (0.5,) * 3, "std": (0.25,) * 3}


@pytest.fixture
def photos(tmp_path):
    """Five images of three shapes (one 'landscape' pair, one 'portrait' pair, one square)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(50, 30), (40, 60), (50, 30), (40, 60), (33, 33)]):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_resize_long_side_keeps_the_aspect():
    img = Image.new("RGB", (100, 50))
    assert resize_long_side(img, 224).size == (224, 112)
    assert resize_long_side(Image.new("RGB", (30, 90)), 45).size == (15, 45)


def test_gem_p1_is_mean_pooling_and_large_p_tends_to_max():
    tokens = torch.rand(2, 7, 5) + 0.1
    assert torch.allclose(gem(tokens, p=1), tokens.mean(dim=1))
    assert torch.allclose(gem(tokens, p=200), tokens.amax(dim=1), rtol=0.02)


def test_fit_to_patch_drops_the_remainder_like_a_strided_conv():
    x = torch.rand(1, 3, 37, 29)
    assert fit_to_patch(x, 8).shape[-2:] == (32, 24)
    assert torch.equal(fit_to_patch(x, 8), x[..., :32, :24])
    assert fit_to_patch(torch.rand(1, 3, 5, 20), 8).shape[-2:] == (8, 16)


def _by_hand(backbone, path, imsize, box=None):
    img = Image.open(path).convert("RGB")
    img = resize_long_side(img.crop(box) if box else img, imsize)
    x = TF.normalize(TF.to_tensor(img), KW["mean"], KW["std"])[None]
    with torch.no_grad():
        return backbone.forward_features(fit_to_patch(x, 8))["x_norm_clstoken"][0]


def test_mixed_shapes_batched_equal_one_by_one(backbone, photos):
    feats = image_descriptors(backbone, photos, 36, batch_size=4, **KW)
    assert feats.shape == (5, 32)
    for i, path in enumerate(photos):
        assert torch.allclose(feats[i], _by_hand(backbone, path, 36), atol=1e-5)
    boxes = [(2, 3, 30, 25)] + [None] * 4
    boxed = image_descriptors(backbone, photos, 36, boxes=boxes, **KW)
    assert torch.allclose(boxed[0], _by_hand(backbone, photos[0], 36, boxes[0]), atol=1e-5)
    assert torch.allclose(boxed[1:], feats[1:], atol=1e-5)


def test_multiscale_averages_three_scales(backbone, photos):
    feats = image_descriptors(backbone, photos[:1], 48, multiscale=True, **KW)
    img = resize_long_side(Image.open(photos[0]).convert("RGB"), 48)
    x = TF.normalize(TF.to_tensor(img), KW["mean"], KW["std"])[None]
    expected = 0
    for s in SCALES:
        inp = x if s == 1 else F.interpolate(x, scale_factor=s, mode="bilinear")
        with torch.no_grad():
            expected += backbone.forward_features(fit_to_patch(inp, 8))["x_norm_clstoken"][0]
    assert torch.allclose(feats[0], expected / 3, atol=1e-5)


def test_cls_gem_square_and_cache(backbone, photos, tmp_path):
    cache = tmp_path / "cache"
    kw = {**KW, "kind": "cls+gem", "square": True, "cache_dir": cache}
    first = image_descriptors(backbone, photos, 32, **kw)
    assert first.shape == (5, 64) and len(list(cache.iterdir())) == 1
    again = image_descriptors(backbone, photos, 32, **kw)
    assert torch.equal(first, again) and len(list(cache.iterdir())) == 1
    image_descriptors(backbone, photos, 40, **kw)  # another size: another entry
    assert len(list(cache.iterdir())) == 2


def test_bad_inputs_are_one_sentence(backbone, photos, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Cannot read image .*broken.jpg"):
        image_descriptors(backbone, [*photos, str(bad)], 32, **KW)
    with pytest.raises(ValueError, match="Unknown descriptor 'vlad'"):
        image_descriptors(backbone, photos, 32, kind="vlad", **KW)


def test_raw_pixels_are_centred_rows(photos):
    feats = raw_pixel_descriptors(photos, size=8)
    assert feats.shape == (5, 8 * 8 * 3)
    assert torch.allclose(feats.mean(dim=1), torch.zeros(5), atol=1e-6)
