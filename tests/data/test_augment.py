from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from dinolab.config.loader import load_config
from dinolab.config.schema import DataConfig
from dinolab.data.augment import EvalTransform, MultiCropAugmentation, RandomGaussianBlur
from dinolab.data.datasets import apply_seeded
from tests.data.image_zoo import gradient

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def steps(view: T.Compose) -> dict[type, object]:
    """Transform type -> transform, nested Compose flattened."""
    out = {}
    for t in view.transforms:
        out.update(steps(t) if isinstance(t, T.Compose) else {type(t): t})
    return out


@pytest.fixture
def image() -> Image.Image:
    return Image.fromarray(np.tile(gradient(), (4, 4, 1)))  # 80x64


def test_crop_counts_sizes_and_value_range(image):
    out = MultiCropAugmentation(32, 16, 6)(image)
    assert set(out) == {"global_crops", "local_crops"}
    assert [c.shape for c in out["global_crops"]] == [(3, 32, 32)] * 2
    assert [c.shape for c in out["local_crops"]] == [(3, 16, 16)] * 6
    lo = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    hi = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    for c in out["global_crops"] + out["local_crops"]:
        assert c.dtype == torch.float32
        per_channel = c.flatten(1)
        assert (per_channel.min(1).values >= lo - 1e-5).all()
        assert (per_channel.max(1).values <= hi + 1e-5).all()
        assert c.std() > 0  # not a constant image


def test_no_local_crops(image):
    out = MultiCropAugmentation(24, 8, 0)(image)
    assert out["local_crops"] == [] and len(out["global_crops"]) == 2


def test_recipe_is_dino_byol(image):
    aug = MultiCropAugmentation(224, 96, 8)
    for view, size, scale, blur_p, solarize_p in (
        (aug.global1, 224, (0.4, 1.0), 1.0, None),
        (aug.global2, 224, (0.4, 1.0), 0.1, 0.2),
        (aug.local, 96, (0.05, 0.4), 0.5, None),
    ):
        s = steps(view)
        rrc = s[T.RandomResizedCrop]
        assert rrc.size == (size, size) and rrc.scale == scale
        assert rrc.interpolation == T.InterpolationMode.BICUBIC
        assert s[T.RandomHorizontalFlip].p == 0.5
        jitter = s[T.RandomApply]
        assert jitter.p == 0.8
        cj = jitter.transforms[0]
        assert (cj.brightness, cj.contrast, cj.saturation) == ((0.6, 1.4), (0.6, 1.4), (0.8, 1.2))
        assert cj.hue == (-0.1, 0.1)
        assert s[T.RandomGrayscale].p == 0.2
        assert s[RandomGaussianBlur].p == blur_p
        assert s[RandomGaussianBlur].sigma == pytest.approx((0.1, 2.0))  # DINO at 224 / 96
        if solarize_p is None:
            assert T.RandomSolarize not in s
        else:
            assert s[T.RandomSolarize].p == solarize_p and s[T.RandomSolarize].threshold == 128
        assert s[T.Normalize].mean == MEAN and s[T.Normalize].std == STD


def test_blur_sigma_scales_with_crop_size():
    aug = MultiCropAugmentation(32, 16, 2)
    assert steps(aug.global1)[RandomGaussianBlur].sigma == pytest.approx((0.1 / 7, 2.0 / 7))
    assert steps(aug.local)[RandomGaussianBlur].sigma == pytest.approx((0.1 / 6, 2.0 / 6))


@pytest.mark.parametrize("scale", [(0.4, 1.0), (0.05, 0.4)])
def test_random_resized_crop_areas_follow_scale(scale):
    rrc = T.RandomResizedCrop(16, scale=scale)
    img = torch.zeros(3, 64, 64)
    torch.manual_seed(0)
    fractions = []
    for _ in range(400):
        _, _, h, w = rrc.get_params(img, rrc.scale, rrc.ratio)
        fractions.append(h * w / 64**2)
    f = np.array(fractions)
    lo, hi = scale
    assert f.min() >= lo * 0.85 and f.max() <= hi * 1.1
    # the whole range is used (the aspect-ratio retries bias it a little towards small crops)
    q05, q95 = np.quantile(f, [0.05, 0.95])
    assert q05 < lo + 0.1 * (hi - lo) and q95 > hi - 0.25 * (hi - lo)


def test_blur_probability_and_effect(image):
    assert RandomGaussianBlur(0.0)(image) is image
    blurred = np.asarray(RandomGaussianBlur(1.0, (2.0, 2.0))(image)).astype(float)
    sharp = np.asarray(image).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(sharp, axis=1)).mean()


def test_seeded_views_are_reproducible(image):
    aug = MultiCropAugmentation(32, 16, 4)
    a, b, c = (apply_seeded(aug, image, s) for s in (1, 1, 2))
    views_a, views_b = a["global_crops"] + a["local_crops"], b["global_crops"] + b["local_crops"]
    assert all(torch.equal(x, y) for x, y in zip(views_a, views_b, strict=True))
    assert not torch.equal(a["global_crops"][0], c["global_crops"][0])
    assert not torch.equal(a["global_crops"][0], a["global_crops"][1])


def test_invalid_scale_and_config_construction():
    with pytest.raises(ValueError, match=r"data.local_scale=\[0.5, 0.2\]"):
        MultiCropAugmentation(local_scale=(0.5, 0.2))
    cfg = DataConfig(global_size=32, local_size=16, num_local_crops=3, local_scale=[0.1, 0.3])
    aug = MultiCropAugmentation.from_config(cfg)
    assert aug.num_local_crops == 3
    assert steps(aug.local)[T.RandomResizedCrop].scale == (0.1, 0.3)


def test_eval_transform_resizes_then_center_crops():
    img = Image.new("RGB", (100, 50), (255, 0, 128))
    out = EvalTransform(32)(img)
    assert out.shape == (3, 32, 32)
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out.mean((1, 2)), expected, atol=1e-2)
    assert steps(EvalTransform(224))[T.Resize].size == 256


def _blur_and_solarize(view: T.Compose) -> tuple[float, float]:
    blur = next(t for t in view.transforms if isinstance(t, RandomGaussianBlur))
    sol = [t for t in view.transforms if isinstance(t, T.RandomSolarize)]
    return blur.p, (sol[0].p if sol else 0.0)


def test_blur_and_solarize_probabilities_per_view_from_config():
    cfg = DataConfig(global_size=32, local_size=16, blur_p=[0.0, 0.9, 0.25], solarize_p=0.0)
    aug = MultiCropAugmentation.from_config(cfg)
    assert _blur_and_solarize(aug.global1) == (0.0, 0.0)
    assert _blur_and_solarize(aug.global2) == (0.9, 0.0)  # solarize 0: no solarize step
    assert _blur_and_solarize(aug.local) == (0.25, 0.0)
    default = MultiCropAugmentation.from_config(DataConfig())  # DINO v1's recipe
    assert _blur_and_solarize(default.global1) == (1.0, 0.0)
    assert _blur_and_solarize(default.global2) == (0.1, 0.2)
    assert _blur_and_solarize(default.local) == (0.5, 0.0)


def test_bad_blur_or_solarize_probability_is_one_sentence():
    with pytest.raises(ValueError, match=r"data.blur_p=\[1.0, 0.1\] must be 3 probabilities"):
        MultiCropAugmentation(blur_p=(1.0, 0.1))
    with pytest.raises(ValueError, match="data.solarize_p=1.5 must be a probability"):
        MultiCropAugmentation(solarize_p=1.5)


class _Applied:
    """Wraps one view's random step and counts how often it changed the image (was applied)."""

    def __init__(self, step) -> None:
        self.step, self.calls, self.applied = step, 0, 0

    def __call__(self, img):
        out = self.step(img)
        self.calls += 1
        self.applied += out is not img
        return out


def _count_applied(aug: MultiCropAugmentation) -> dict[str, dict[type, _Applied]]:
    counters = {}
    for name in ("global1", "global2", "local"):
        view = getattr(aug, name)
        counters[name] = {}
        for i, t in enumerate(view.transforms):
            if isinstance(t, RandomGaussianBlur | T.RandomSolarize):
                view.transforms[i] = counters[name][type(t)] = _Applied(t)
    return counters


@pytest.mark.parametrize(
    "preset, blur, solarize",
    [("dinov2_vitl14", (0.0, 0.9, 0.5), 0.2), ("dino_vits16", (1.0, 0.1, 0.5), 0.2)],
)
def test_per_view_blur_and_solarize_rates_over_many_draws(preset, blur, solarize):
    """What the released models saw: DINOv2's wrapper inverts p (global 1 never blurred, global 2
    blurred 90%); DINO v1 blurs global 1 always. Measured on the real pipeline (fixed seed)."""
    data = load_config(preset).data
    data.global_size, data.local_size, data.num_local_crops = 16, 8, 2
    aug = MultiCropAugmentation.from_config(data)
    counters = _count_applied(aug)
    img = Image.fromarray(np.tile(gradient(), (1, 1, 1)))
    torch.manual_seed(0)
    for _ in range(1000):
        aug(img)
    for name, p in zip(("global1", "global2", "local"), blur, strict=True):
        c = counters[name][RandomGaussianBlur]
        assert c.calls == 1000 * (2 if name == "local" else 1)
        # binomial sd <= 0.016 at 1000 draws (0.011 for the 2000 local ones): 0.05 is > 3 sd
        assert abs(c.applied / c.calls - p) < 0.05, (name, c.applied / c.calls, p)
    sol = counters["global2"][T.RandomSolarize]
    assert abs(sol.applied / sol.calls - solarize) < 0.05
    assert T.RandomSolarize not in counters["global1"] and T.RandomSolarize not in counters["local"]
