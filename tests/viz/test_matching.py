"""Mutual nearest neighbours of patch features, and the matching picture."""

import torch
from PIL import Image

from dinolab.viz.matching import match_images, mutual_nearest_neighbours, plot_matches

from .test_attention import save_image, tiny_vit


def test_only_mutual_pairs():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 8, generator=g), torch.randn(25, 8, generator=g)
    out = mutual_nearest_neighbours(a, b)
    sim = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
    expected = {
        (i, int(sim[i].argmax())) for i in range(30) if sim[:, sim[i].argmax()].argmax() == i
    }
    assert {tuple(p) for p in out["pairs"].tolist()} == expected
    assert len(expected) < 25  # random features: not every patch has a mutual partner
    assert (out["similarity"][:-1] >= out["similarity"][1:]).all()


def test_permuted_copy_is_matched_exactly():
    a = torch.randn(12, 16)
    perm = torch.randperm(12)
    out = mutual_nearest_neighbours(a, a[perm] + 0.01 * torch.randn(12, 16))
    assert len(out["pairs"]) == 12
    assert all(perm[j] == i for i, j in out["pairs"].tolist())


def test_match_images_writes_png(tmp_path):
    a, b = save_image(tmp_path / "a.png", 32, 40, 0), save_image(tmp_path / "b.png", 40, 32, 1)
    result = match_images(tiny_vit(), a, b, size=32, foreground=False)
    assert len(result["pairs"]) > 0
    assert (result["points_a"][:, 0] < 40).all() and (result["points_b"][:, 1] < 40).all()
    with Image.open(plot_matches(result, tmp_path / "m.png")) as im:
        assert im.format == "PNG"
