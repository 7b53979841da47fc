"""Joint PCA of patch features: foreground split, RGB components, shapes, value ranges."""

import pytest
import torch
from PIL import Image

from dinolab.viz.pca import otsu, patch_features, pca_maps, pca_rgb, plot_pca

from .test_attention import save_image, tiny_vit


def blob_features(h, w, seed):
    """Patches in the centre near one of two object directions, border patches near another."""
    g = torch.Generator().manual_seed(seed)
    fg = torch.zeros(h, w, dtype=torch.bool)
    fg[1:-1, 1:-1] = True
    bg_dir, fg_a, fg_b = torch.eye(8)[0] * 5, torch.eye(8)[1] * 5, torch.eye(8)[2] * 5
    feats = bg_dir + 0.1 * torch.randn(h, w, 8, generator=g)
    parts = torch.where(torch.arange(w) < w // 2, 1.0, 0.0).expand(h, w)[..., None]
    feats[fg] = (fg_a * parts + fg_b * (1 - parts))[fg] + 0.1 * torch.randn(8, generator=g)
    return feats, fg


def test_foreground_and_rgb():
    (fa, ga), (fb, gb) = blob_features(5, 6, 0), blob_features(4, 4, 1)
    out = pca_rgb([fa, fb])
    for f, g, c1, rgb in zip(out["foreground"], [ga, gb], out["first"], out["rgb"], strict=True):
        assert torch.equal(f, g)
        assert c1.shape == g.shape and c1.min() >= 0 and c1.max() <= 1
        assert rgb.shape == (*g.shape, 3) and rgb.min() >= 0 and rgb.max() <= 1
        assert (rgb[~g] == 0).all()
    assert all(0 < t < 1 for t in out["thresholds"])
    own = pca_rgb([fa, fb], per_image=True)
    assert all(torch.equal(f, g) for f, g in zip(own["foreground"], [ga, gb], strict=True))
    fixed = pca_rgb([fa, fb], threshold=2.0)  # nothing above it: all patches, with a warning
    assert fixed["thresholds"] == [2.0, 2.0] and all(f.all() for f in fixed["foreground"])


def test_otsu_splits_two_groups():
    values = torch.cat([torch.full((50,), 0.2), torch.full((30,), 0.8)])
    assert 0.2 < otsu(values) < 0.8


def test_pca_of_images_writes_png(tmp_path):
    imgs = [save_image(tmp_path / f"{i}.png", 32, 40, seed=i) for i in range(2)]
    result = pca_maps(tiny_vit(), imgs, size=32)
    assert [r.shape for r in result["rgb"]] == [(4, 5, 3), (4, 5, 3)]
    with Image.open(plot_pca(result, tmp_path / "pca.png")) as im:
        assert im.format == "PNG"


def test_pca_of_a_convolutional_backbone(tmp_path):
    from dinolab.models.small_resnet import SmallResNet

    net = SmallResNet(embed_dim=32, depth=1)
    imgs = [save_image(tmp_path / f"{i}.png", 32, 40, seed=i) for i in range(2)]
    result = pca_maps(net, imgs, size=32)  # one cell per 8 pixels: 4 x 5
    assert [r.shape for r in result["rgb"]] == [(4, 5, 3), (4, 5, 3)]
    x = torch.randn(1, 3, 32, 40)
    expected = net.eval().feature_map(x)[0].permute(1, 2, 0)
    assert torch.equal(patch_features(net, x), expected)
    with pytest.raises(ValueError, match="only -1"):
        patch_features(net, x, block=2)
