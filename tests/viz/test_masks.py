"""Masks keeping the top attention mass, Jaccard, and ground-truth mask folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.viz.masks import jaccard, load_masks, mask_scores, mass_mask


@pytest.mark.parametrize("keep", [0.1, 0.6, 0.9, 1.0])
def test_mask_keeps_the_requested_mass_and_no_more_patches(keep):
    maps = torch.rand(3, 5, 6) ** 4
    mask = mass_mask(maps, keep)
    assert mask.shape == maps.shape and mask.dtype == torch.bool
    for m, a in zip(mask, maps, strict=True):
        kept = a[m]
        assert kept.sum() / a.sum() >= keep - 1e-5
        assert (kept.sum() - kept.min()) / a.sum() < keep  # the smallest kept one was needed
        dropped = a[~m]
        assert dropped.numel() == 0 or kept.min() >= dropped.max()  # the highest are kept


def test_mask_by_hand():
    a = torch.tensor([[0.5, 0.3], [0.15, 0.05]])
    assert mass_mask(a, 0.6).tolist() == [[True, True], [False, False]]
    assert mass_mask(a, 0.5).tolist() == [[True, False], [False, False]]
    assert mass_mask(a, 0.81).tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError, match="fraction"):
        mass_mask(a, 60)


def test_jaccard_by_hand():
    a = np.array([[1, 1, 0, 0]], dtype=bool)
    b = np.array([[0, 1, 1, 0]], dtype=bool)
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0 and jaccard(a, ~a) == 0.0
    assert jaccard(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        jaccard(a, a.T)


def test_mask_folder(tmp_path):
    gt = np.zeros((20, 30), np.uint8)
    gt[:10] = 255
    Image.fromarray(gt).save(tmp_path / "cat.png")
    (m,) = load_masks(tmp_path, ["cat"], [(10, 15)])
    assert m.shape == (10, 15) and m[:5].all() and not m[5:].any()
    with pytest.raises(ValueError, match="no mask for dog"):
        load_masks(tmp_path, ["cat", "dog"], [(10, 15)] * 2)
    with pytest.raises(FileNotFoundError, match="No mask folder"):
        load_masks(tmp_path / "nope", ["cat"], [(10, 15)])


def test_scores_of_a_head_that_finds_the_object():
    grid = torch.full((2, 4, 4), 0.01)
    grid[0, :2, :2] = 1.0  # head 0 looks at the top-left quadrant, head 1 everywhere
    target = torch.zeros(32, 32, dtype=torch.bool)
    target[:16, :16] = True
    maps = [{"name": "x", "grid": grid, "rgb": np.zeros((32, 32, 3), np.uint8)}]
    (s,) = mask_scores(maps, [target], keep=0.9)  # 4 of 4.12: the quadrant, all of it
    assert s["heads"][0] == pytest.approx(1.0) and s["heads"][1] < 0.5
    assert s["best_head"] == 0
