"""Gram anchoring loss: a hand computation on 2 images, zero at equality, student-only gradient."""

import math

import pytest
import torch

from dinolab.losses.gram import gram_loss, gram_matrix

# 2 images x 3 patches x 2 dims
STUDENT = torch.tensor(
    [[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]]]
)
TEACHER = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])


def test_gram_loss_matches_a_hand_computation_on_two_images():
    r = 1 / math.sqrt(2)
    # image 0: student cosines [[1,0,r],[0,1,r],[r,r,1]], teacher [[1,1,0],[1,1,0],[0,0,1]]
    assert torch.allclose(gram_matrix(STUDENT)[0], torch.tensor([[1, 0, r], [0, 1, r], [r, r, 1]]))
    # squared differences: (0,1),(1,0): 1 each; (0,2),(2,0),(1,2),(2,1): r^2 = 1/2 each -> 4
    # image 1: student [[1,-1,0],[-1,1,0],[0,0,1]], teacher [[1,1,0],[1,1,0],[0,0,1]] -> 4 + 4
    # mean over 2 x 3 x 3 entries: (4 + 8) / 18
    assert gram_loss(STUDENT, TEACHER).item() == pytest.approx(12 / 18)
    # negatives clamped to 0: image 1 differs by 1 at (0,1),(1,0) -> (4 + 2) / 18
    assert gram_loss(STUDENT, TEACHER, remove_negative=True).item() == pytest.approx(6 / 18)


def test_gram_loss_is_zero_when_the_student_is_the_gram_teacher():
    x = torch.randn(4, 9, 16)
    assert gram_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-12)
    # the loss sees similarities only: rescaled features are the same Gram matrix
    assert gram_loss(x * 3.0, x).item() == pytest.approx(0.0, abs=1e-10)


def test_gram_loss_gradient_reaches_the_student_only():
    s = torch.randn(2, 5, 8, requires_grad=True)
    t = torch.randn(2, 5, 8, requires_grad=True)
    gram_loss(s, t).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_gram_loss_shape_mismatch_is_one_clear_error():
    with pytest.raises(ValueError, match="same images and patches"):
        gram_loss(torch.randn(2, 4, 8), torch.randn(2, 9, 8))
