"""PCA whitening: identity covariance on its own training set, DINO's uncentred variant."""

import torch

from dinolab.eval.whitening import PCAWhitening


def _features(n=400, d=6):
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(d, d, generator=g)
    return torch.randn(n, d, generator=g) @ mix + 3.0  # correlated, off-centre


def test_centred_whitening_gives_identity_covariance():
    x = _features()
    pca = PCAWhitening.fit(x)
    w = pca.apply(x).double()
    assert torch.allclose(w.mean(dim=0), torch.zeros(6, dtype=torch.float64), atol=1e-4)
    cov = (w - w.mean(dim=0)).T @ (w - w.mean(dim=0)) / len(w)
    assert torch.allclose(cov, torch.eye(6, dtype=torch.float64), atol=1e-3)
    assert pca.centred and pca.n_floored == 0


def test_dino_compat_whitens_the_uncentred_second_moment():
    x = _features()
    pca = PCAWhitening.fit(x, centred=False)
    # the projection makes E[x x^T] (not the covariance) the identity
    moment = pca.projection.double() @ (x.double().T @ x.double() / len(x))
    assert torch.allclose(moment @ pca.projection.double().T, torch.eye(6, dtype=torch.float64),
                          atol=1e-3)  # fmt: skip
    assert not pca.centred


def test_too_few_images_floor_the_eigenvalues():
    x = _features(n=3, d=6)
    assert PCAWhitening.fit(x).n_floored >= 3  # rank <= 2 after centring
