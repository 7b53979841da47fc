import numpy as np
import pytest
import torch

from dinolab.finetune.mixup import (
    Mixer,
    cutmix_images,
    smooth_one_hot,
    soft_cross_entropy,
    step_rng,
)


def _batch():
    torch.manual_seed(0)
    return torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 3])


def test_label_smoothing_values():
    t = smooth_one_hot(torch.tensor([1, 0]), 4, 0.1)
    assert torch.allclose(t[0], torch.tensor([0.025, 0.925, 0.025, 0.025]))
    assert torch.allclose(t.sum(1), torch.ones(2))


@pytest.mark.parametrize(
    "mixer", [Mixer(mixup=0.8), Mixer(cutmix=1.0), Mixer(mixup=0.8, cutmix=1.0, switch_prob=0.5)]
)
def test_mixed_targets_sum_to_one_and_mix_two_labels(mixer):
    images, labels = _batch()
    for step in range(8):
        mixed, targets = mixer(images, smooth_one_hot(labels, 4, 0.1), step_rng(0, step))
        assert mixed.shape == images.shape
        assert torch.allclose(targets.sum(1), torch.ones(6), atol=1e-6)
        # row i mixes label i with label of row 5 - i (the reversed batch), nothing else
        plain = smooth_one_hot(labels, 4, 0.0)
        mixed_plain = mixer(images, plain, step_rng(0, step))[1]
        support = (plain + plain.flip(0)) > 0
        assert (mixed_plain[~support] == 0).all()


def test_cutmix_lambda_is_the_area_kept():
    a, b = torch.zeros(1, 1, 10, 10), torch.ones(1, 1, 10, 10)
    out, lam = cutmix_images(a, b, 0.75, np.random.default_rng(3))
    assert out.mean().item() == pytest.approx(1 - lam)


def test_draws_depend_on_seed_and_step_only():
    images, labels = _batch()
    t = smooth_one_hot(labels, 4, 0.1)
    m = Mixer(mixup=0.8, cutmix=1.0)
    x1, y1 = m(images, t, step_rng(5, 7))
    x2, y2 = m(images, t, step_rng(5, 7))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert Mixer().enabled is False and Mixer()(images, t, step_rng(0, 0))[1] is t


def test_soft_cross_entropy_is_cross_entropy_for_one_hot():
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 2, 1, 1, 0])
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert soft_cross_entropy(logits, smooth_one_hot(labels, 3, 0.1)).item() == pytest.approx(
        expected.item(), rel=1e-5
    )
