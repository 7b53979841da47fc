"""The head-free distillation losses: zero when the student matches, the grid resampling."""

import pytest
import torch

from dinolab.losses.feature_distill import (
    cosine_distill_loss,
    patch_similarity_loss,
    resize_patch_grid,
    square_grid,
)


def test_cosine_term_is_zero_for_parallel_features_and_two_for_opposite():
    x = torch.randn(5, 8)
    assert cosine_distill_loss(3 * x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_distill_loss(-x, x).item() == pytest.approx(2.0, abs=1e-6)


def test_patch_term_sees_similarity_structure_not_width_or_scale():
    torch.manual_seed(0)
    t = torch.randn(2, 9, 16)
    rotation = torch.linalg.qr(torch.randn(16, 16))[0]
    same = patch_similarity_loss(2.0 * t @ rotation, t)  # same similarities, other basis
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    other = patch_similarity_loss(torch.randn(2, 9, 4), t)  # another width, other structure
    assert other.item() > 0.1
    s = torch.randn(2, 9, 16, requires_grad=True)
    patch_similarity_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same images and patches"):
        patch_similarity_loss(torch.randn(2, 4, 16), t)


def test_resize_patch_grid_keeps_same_grids_and_resamples_others():
    x = torch.randn(3, 16, 5)
    assert resize_patch_grid(x, (4, 4)) is x
    const = torch.ones(1, 4, 2) * torch.tensor([1.0, -2.0])
    up = resize_patch_grid(const, (4, 4))
    assert up.shape == (1, 16, 2) and torch.allclose(
        up, torch.ones(1, 16, 2) * torch.tensor([1.0, -2.0])
    )
    assert square_grid(49) == (7, 7)
    with pytest.raises(ValueError, match="square"):
        square_grid(12)
