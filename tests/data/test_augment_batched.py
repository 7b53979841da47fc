"""`data.augment_impl=batched`: the DINO recipe's layout, rates and pixel statistics as the PIL
path, views a pure function of (images, seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.data import (
    BatchedMultiCrop,
    MultiCropAugmentation,
    ToUint8Tensor,
    apply_seeded,
    multicrop_pipeline,
)
from dinolab.data.augment_batched import JITTER
from tests.data.image_zoo import gradient
from tests.threads import one_thread  # noqa: F401 (autouse)

PLAIN = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # views in [0, 1]


def _u8(img: np.ndarray) -> torch.Tensor:
    return ToUint8Tensor()(Image.fromarray(img))


def _both(img: np.ndarray, n: int, **kw) -> tuple[dict, dict]:
    """Views of one image under n seeds: PIL (per sample) and batched (one batch of n)."""
    pil_aug, batched = MultiCropAugmentation(**kw), BatchedMultiCrop(**kw)
    pil_views = [apply_seeded(pil_aug, Image.fromarray(img), s) for s in range(n)]
    pil = {  # view-major, as the collate stacks them
        k: torch.stack([p[k][v] for v in range(len(pil_views[0][k])) for p in pil_views])
        for k in pil_views[0]
    }
    return pil, batched([_u8(img)] * n, list(range(1000, 1000 + n)))


def test_layout_dtype_and_normalisation():
    imgs = [_u8(gradient(20, 16)), _u8(gradient(12, 30))]  # two sizes in one batch
    kw = {"global_size": 16, "local_size": 8, "num_local_crops": 3}
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = BatchedMultiCrop(**kw, mean=mean, std=std)(imgs, [7, 8])
    plain = BatchedMultiCrop(**kw, **PLAIN)(imgs, [7, 8])
    assert out["global_crops"].shape == (4, 3, 16, 16)
    assert out["global_crops"].dtype == torch.float32
    assert out["local_crops"].shape == (6, 3, 8, 8)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    for key in ("global_crops", "local_crops"):
        assert torch.allclose(out[key] * s + m, plain[key], atol=1e-6)
        assert plain[key].min() >= 0 and plain[key].max() <= 1
    none = BatchedMultiCrop(**{**kw, "num_local_crops": 0})(imgs, [7, 8])
    assert none["local_crops"] is None and none["global_crops"].shape == (4, 3, 16, 16)


def test_views_are_a_pure_function_of_images_and_seeds():
    imgs = [_u8(np.roll(gradient(24, 24), 5 * i, 1)) for i in range(4)]
    aug = BatchedMultiCrop(16, 8, 2)
    a, b = aug(imgs, [1, 2, 3, 4]), aug(imgs, [1, 2, 3, 4])
    c = aug(imgs, [1, 2, 3, 5])
    assert torch.equal(a["global_crops"], b["global_crops"])
    assert torch.equal(a["local_crops"], b["local_crops"])
    assert not torch.equal(a["global_crops"], c["global_crops"])
    torch.manual_seed(0)
    d = aug(imgs, [None] * 4)  # unseeded: torch's global RNG
    torch.manual_seed(0)
    assert torch.equal(d["local_crops"], aug(imgs, [None] * 4)["local_crops"])


def test_random_choices_have_the_recipes_rates():
    # 64 x 400 views: every rate within 4 binomial standard errors (<= 0.025 at n = 400).
    aug = BatchedMultiCrop(32, 16, 4, blur_p=(1.0, 0.1, 0.5), solarize_p=0.2)
    sizes = torch.tensor([[32, 32]] * 400)
    g = torch.Generator().manual_seed(0)
    glob, loc = aug.globals.draw(sizes, g), aug.locals.draw(sizes, g)
    near = lambda x, p: abs(float(x.double().mean()) - p) <= 4 * (p * (1 - p) / x.numel()) ** 0.5  # noqa: E731
    g1, g2 = slice(0, 400), slice(400, 800)
    assert glob["blur"][g1].all() and near(glob["blur"][g2], 0.1) and near(loc["blur"], 0.5)
    assert not glob["solarize"][g1].any() and near(glob["solarize"][g2], 0.2)
    assert not loc["solarize"].any()
    for d in (glob, loc):
        assert near(d["flip"], 0.5) and near(d["jitter"], 0.8) and near(d["gray"], 0.2)
        assert (d["order"].sort(1).values == torch.arange(4)).all()  # permutations
    lo, hi = glob["factors"].min(0).values, glob["factors"].max(0).values
    b, c, s, h = (JITTER[k] for k in ("brightness", "contrast", "saturation", "hue"))
    assert torch.allclose(lo, torch.tensor([1 - b, 1 - c, 1 - s, -h], dtype=lo.dtype), atol=0.01)
    assert torch.allclose(hi, torch.tensor([1 + b, 1 + c, 1 + s, h], dtype=hi.dtype), atol=0.01)
    # sigma scaled as augment.py scales it: DINO's (0.1, 2.0) x 32/224 and x 16/96
    assert 0.1 * 32 / 224 <= glob["sigma"].min() and glob["sigma"].max() <= 2.0 * 32 / 224
    assert loc["sigma"].max() <= 2.0 * 16 / 96 and loc["sigma"].max() > 0.9 * 2.0 * 16 / 96


def _within(a: torch.Tensor, b: torch.Tensor, slack: float) -> bool:
    """Mean of a and b (per-view values) equal within 4 standard errors + slack."""
    se = (a.var() / a.numel() + b.var() / b.numel()) ** 0.5
    return abs(float(a.mean() - b.mean())) <= 4 * float(se) + slack


def test_pixel_statistics_match_the_pil_path():
    # 300 seeds of one colourful 32 px image: per view kind and channel, the mean and the std of
    # the view's pixels agree with PIL's within 4 standard errors + 0.01 (PIL rounds each op
    # to 8 bits, contrast to an integer mean, hue through 8-bit HSV: < 0.5 % of the range).
    img = (gradient(32, 32).astype(int) * 3 // 4 + 30).astype(np.uint8)
    kw = {"global_size": 32, "local_size": 16, "num_local_crops": 2, **PLAIN}
    pil, ours = _both(img, 300, **kw)
    for key in ("global_crops", "local_crops"):
        for stat in (lambda v: v.mean((2, 3)), lambda v: v.std((2, 3))):
            a, b = stat(pil[key]), stat(ours[key])
            for ch in range(3):
                assert _within(a[:, ch], b[:, ch], 0.01), (key, ch)


def test_flip_grayscale_and_solarize_rates_match_the_pil_path():
    n, kw = 200, {"global_size": 32, "local_size": 16, "num_local_crops": 2, **PLAIN}
    # flip: dark left half, bright right half; jitter keeps the order, a flip reverses it
    halves = np.zeros((32, 32, 3), np.uint8)
    halves[:, 16:] = 255
    for views in _both(halves, n, **kw):
        g = views["global_crops"][:n]  # global 1: never solarized
        flipped = g[..., :16].mean((1, 2, 3)) > g[..., 16:].mean((1, 2, 3))
        assert abs(float(flipped.float().mean()) - 0.5) < 0.12
    # grayscale: a colourful image's views with r == g == b (PIL: exact 8-bit equality)
    for views in _both(gradient(32, 32), n, **kw):
        v = views["local_crops"]
        gray = ((v[:, 0] - v[:, 1]).abs().amax((1, 2)) < 1e-6) & (
            (v[:, 1] - v[:, 2]).abs().amax((1, 2)) < 1e-6
        )
        assert abs(float(gray.float().mean()) - 0.2) < 0.07
    # solarize: a uniform 230 grey stays >= 138 under any jitter, below 128 once solarized
    grey = np.full((32, 32, 3), 230, np.uint8)
    for views in _both(grey, n, **kw):
        dark = views["global_crops"].mean((1, 2, 3)) < 0.5
        assert not dark[:n].any() and abs(float(dark[n:].float().mean()) - 0.2) < 0.12


def test_blur_changes_views_only_where_drawn():
    # Same seeds, blur_p 0 vs 1: the random stream is the same, so views differ by the blur only;
    # with sigma up to 2 px (64 px locals) a blurred checkerboard always differs.
    img = np.kron((np.indices((8, 8)).sum(0) % 2) * 255, np.ones((4, 4)))
    img = np.repeat(img[..., None], 3, -1).astype(np.uint8)
    kw = {"global_size": 32, "local_size": 64, "num_local_crops": 2, "local_scale": (0.5, 1.0)}
    seeds, imgs = list(range(40)), [_u8(img)] * 40
    sharp = BatchedMultiCrop(**kw, blur_p=(0, 0, 0))(imgs, seeds)["local_crops"]
    half = BatchedMultiCrop(**kw, blur_p=(0, 0, 0.5))(imgs, seeds)["local_crops"]
    changed = (sharp - half).abs().amax((1, 2, 3)) > 1e-4
    assert 0.25 < float(changed.float().mean()) < 0.75


def test_pipeline_choice_and_unknown_impl():
    class Data:
        global_size, local_size, num_local_crops = 16, 8, 2
        global_scale, local_scale = (0.4, 1.0), (0.05, 0.4)
        mean, std, blur_p, solarize_p = (0.5,) * 3, (0.2,) * 3, (1.0, 0.1, 0.5), 0.2
        augment_impl = "batched"

    transform, batch_aug = multicrop_pipeline(Data)
    assert isinstance(transform, ToUint8Tensor) and isinstance(batch_aug, BatchedMultiCrop)
    Data.augment_impl = "pil"
    transform, batch_aug = multicrop_pipeline(Data)
    assert isinstance(transform, MultiCropAugmentation) and batch_aug is None
    Data.augment_impl = "gpu"
    with pytest.raises(ValueError, match="augment_impl 'gpu': use one of pil, batched"):
        multicrop_pipeline(Data)
    with pytest.raises(ValueError, match="data.blur_p"):
        BatchedMultiCrop(blur_p=(1.0, 0.5))
