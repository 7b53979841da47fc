"""KoLeo: equals the brute-force definition, spreads features, is safe for tiny batches."""

import math

import torch

from dinolab.losses import koleo_loss


def _brute_force(x):
    z = torch.nn.functional.normalize(x.double(), dim=-1)
    n = len(z)
    total = 0.0
    for i in range(n):
        nearest = min(float((z[i] - z[j]).norm()) for j in range(n) if j != i)
        total += math.log(nearest)
    return -total / n


def test_matches_brute_force():
    torch.manual_seed(0)
    x = torch.randn(7, 5) * 3
    assert abs(float(koleo_loss(x)) - _brute_force(x)) < 1e-5


def test_hand_computed_square():
    # Four unit vectors at 90 degrees: every nearest neighbour is at distance sqrt(2).
    x = torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0], [0, -1.0]])
    assert abs(float(koleo_loss(x)) + math.log(math.sqrt(2))) < 1e-6


def test_gradient_pushes_the_closest_pair_apart():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]], requires_grad=True)
    koleo_loss(x).backward()
    step = x - 0.01 * x.grad
    assert koleo_loss(step.detach()) < koleo_loss(x.detach())


def test_safe_for_one_image_and_duplicates():
    one = torch.randn(1, 4, requires_grad=True)
    loss = koleo_loss(one)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(one.grad, torch.zeros(1, 4))
    dup = torch.ones(3, 4, requires_grad=True)
    loss = koleo_loss(dup)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(dup.grad).all()
