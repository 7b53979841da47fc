"""Batched colour / blur / solarize ops equal torchvision's tensor functionals per image."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from dinolab.data import batch_photometric as P


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 12, 10, generator=g)
    x[0] = x[0, :1]  # grey: hue undefined, saturation 0
    x[1, :, :3] = 1.0  # saturated white rows
    x[2, :, :, :2] = 0.0  # black columns
    return x


def _each(fn, x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(x[i], float(factors[i])) for i in range(x.shape[0])])


@pytest.mark.parametrize(
    "ours, theirs, lo, hi",
    [
        (P.adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
        (P.adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
        (P.adjust_saturation, TF.adjust_saturation, 0.8, 1.2),
        (P.adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
def test_jitter_ops_match_torchvision_per_image(images, ours, theirs, lo, hi):
    f = lo + (hi - lo) * torch.rand(images.shape[0], generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ours(images, f), _each(theirs, images, f), atol=1e-5, rtol=0)


def test_jitter_applies_each_images_own_order(images):
    # Per image: the four ops in its own order, only where `apply` holds (ColorJitter.forward).
    g = torch.Generator().manual_seed(2)
    n = images.shape[0]
    order = torch.rand(n, 4, generator=g).argsort(1)
    factors = torch.stack(
        [0.6 + 0.8 * torch.rand(n, generator=g), 0.6 + 0.8 * torch.rand(n, generator=g),
         0.8 + 0.4 * torch.rand(n, generator=g), -0.1 + 0.2 * torch.rand(n, generator=g)], 1
    )  # fmt: skip
    apply = torch.tensor([True, True, False, True, True, True])
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    got = P.color_jitter(images, apply, order, factors)
    for i in range(n):
        ref = images[i]
        for op in order[i].tolist() if apply[i] else []:
            ref = fns[op](ref, float(factors[i, op]))
        assert torch.allclose(got[i], ref, atol=1e-5, rtol=0), i
    assert torch.equal(got[2], images[2])


def test_grayscale_blur_and_solarize_match_torchvision(images):
    mask = torch.tensor([True, False, True, False, True, True])
    gray = P.to_grayscale_where(images, mask)
    for i in range(images.shape[0]):
        ref = TF.rgb_to_grayscale(images[i], 3) if mask[i] else images[i]
        assert torch.allclose(gray[i], ref, atol=1e-6), i
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.3])
    k = P.blur_kernel_size(2.0, 10)
    assert k == 13  # +-3 sigma of the largest sigma, odd
    blurred = P.blur_where(images, mask, sigma, k)
    for i in range(images.shape[0]):
        ref = TF.gaussian_blur(images[i], [k, k], [float(sigma[i])] * 2) if mask[i] else images[i]
        assert torch.allclose(blurred[i], ref, atol=1e-5), i
    solar = P.solarize_where(images, mask)
    for i in range(images.shape[0]):
        ref = TF.solarize(images[i], 128 / 255) if mask[i] else images[i]
        assert torch.equal(solar[i], ref), i
    assert P.blur_kernel_size(0.33, 16) == 3 and P.blur_kernel_size(5.0, 4) == 7  # within image
