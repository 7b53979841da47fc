"""DINO multi-crop augmentation (2 global + N local views, BYOL colour/blur/solarize) and eval.

The recipe is DINO's `DataAugmentationDINO`, on PIL images with torchvision transforms v1
(faster than v2 on small PIL crops, measured on 64 px and 224 px inputs). All randomness comes
from torch's RNG, so `datasets.apply_seeded` makes the views a pure function of the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ImageNet's evaluation view: shorter side to 256 for a 224 centre crop (`EvalTransform`)
IMAGENET_RESIZE_RATIO = 256 / 224
BLUR_SIGMA = (0.1, 2.0)  # DINO's sigma range in pixels at its crop sizes (224 global, 96 local)
REFERENCE_SIZE = {"global": 224, "local": 96}


class RandomGaussianBlur:
    """Gaussian blur with probability p and sigma ~ U(sigma) pixels (PIL, as in DINO).

    Sigma is in output pixels; `MultiCropAugmentation` scales DINO's range by crop size / DINO's
    crop size, so a 32 px crop is blurred as much, relative to its content, as a 224 px one.
    """

    def __init__(self, p: float, sigma: Sequence[float] = BLUR_SIGMA) -> None:
        self.p = p
        self.sigma = (float(sigma[0]), float(sigma[1]))

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.p < 1.0 and torch.rand(()).item() >= self.p:
            return img
        lo, hi = self.sigma
        radius = lo + (hi - lo) * torch.rand(()).item()
        return img.filter(ImageFilter.GaussianBlur(radius=radius))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, sigma={self.sigma})"


def _view(
    size: int,
    scale: Sequence[float],
    blur_p: float,
    blur_sigma: Sequence[float],
    solarize_p: float,
    normalize: T.Compose,
) -> T.Compose:
    """One view's pipeline: crop, flip, colour jitter, grayscale, blur, [solarize], normalise."""
    steps: list[Any] = [
        T.RandomResizedCrop(
            size, scale=tuple(scale), interpolation=T.InterpolationMode.BICUBIC, antialias=True
        ),
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], 0.8),
        T.RandomGrayscale(p=0.2),
        RandomGaussianBlur(blur_p, blur_sigma),
    ]
    if solarize_p > 0:
        steps.append(T.RandomSolarize(threshold=128, p=solarize_p))
    steps.append(normalize)
    return T.Compose(steps)


def _scaled_sigma(size: int, kind: str) -> tuple[float, float]:
    f = size / REFERENCE_SIZE[kind]
    return (BLUR_SIGMA[0] * f, BLUR_SIGMA[1] * f)


def validate_recipe(
    num_local_crops: int,
    global_scale: Sequence[float],
    local_scale: Sequence[float],
    blur_p: Sequence[float],
    solarize_p: float,
) -> None:
    """One sentence per bad multi-crop argument (both implementations, PIL and batched)."""
    if len(blur_p) != 3 or not all(0 <= p <= 1 for p in blur_p):
        raise ValueError(
            f"data.blur_p={list(blur_p)} must be 3 probabilities: global 1, global 2, locals"
        )
    if not 0 <= solarize_p <= 1:
        raise ValueError(f"data.solarize_p={solarize_p} must be a probability in [0, 1]")
    for name, scale in (("global_scale", global_scale), ("local_scale", local_scale)):
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"data.{name}={list(scale)} must be [min, max] in (0, 1]")
    if num_local_crops < 0:
        raise ValueError(f"data.num_local_crops={num_local_crops} must be >= 0")


def recipe_arguments(data: Any) -> dict[str, Any]:
    """The multi-crop recipe's constructor arguments from a `DataConfig` (both
    implementations, PIL and batched, take the same)."""
    return {
        "global_size": data.global_size,
        "local_size": data.local_size,
        "num_local_crops": data.num_local_crops,
        "global_scale": tuple(data.global_scale),
        "local_scale": tuple(data.local_scale),
        "mean": tuple(data.mean),
        "std": tuple(data.std),
        "blur_p": tuple(data.blur_p),
        "solarize_p": data.solarize_p,
    }


class MultiCropAugmentation:
    """PIL RGB image -> {"global_crops": [2 x Tensor[3,G,G]], "local_crops": [N x Tensor[3,L,L]]}.

    Global 1 is always blurred, global 2 rarely blurred and sometimes solarized (the asymmetry
    of BYOL/DINO); local crops are small, half blurred, never solarized. `blur_p` (global 1,
    global 2, locals) and `solarize_p` (global 2) change those probabilities: DINOv2's released
    models saw (0.0, 0.9, 0.5) blur (its wrapper inverts p); tiny images often learn faster with
    less blur.
    """

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 96,
        num_local_crops: int = 8,
        global_scale: Sequence[float] = (0.4, 1.0),
        local_scale: Sequence[float] = (0.05, 0.4),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        blur_p: Sequence[float] = (1.0, 0.1, 0.5),
        solarize_p: float = 0.2,
    ) -> None:
        validate_recipe(num_local_crops, global_scale, local_scale, blur_p, solarize_p)
        self.num_local_crops = num_local_crops
        normalize = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        g_sigma = _scaled_sigma(global_size, "global")
        self.global1 = _view(global_size, global_scale, blur_p[0], g_sigma, 0.0, normalize)
        self.global2 = _view(global_size, global_scale, blur_p[1], g_sigma, solarize_p, normalize)
        l_sigma = _scaled_sigma(local_size, "local")
        self.local = _view(local_size, local_scale, blur_p[2], l_sigma, 0.0, normalize)

    @classmethod
    def from_config(cls, data: Any) -> MultiCropAugmentation:
        """Build from a `DataConfig` (or anything with the same attributes)."""
        return cls(**recipe_arguments(data))

    def __call__(self, img: Image.Image) -> dict[str, list[torch.Tensor]]:
        return {
            "global_crops": [self.global1(img), self.global2(img)],
            "local_crops": [self.local(img) for _ in range(self.num_local_crops)],
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(\n  global1={self.global1},\n  global2={self.global2},\n"
            f"  local x{self.num_local_crops}={self.local})"
        )


class EvalTransform(T.Compose):
    """Resize the shorter side to size * resize_ratio (bicubic), centre-crop size, normalise."""

    def __init__(
        self,
        size: int = 224,
        resize_ratio: float = IMAGENET_RESIZE_RATIO,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__(
            [
                T.Resize(
                    round(size * resize_ratio),
                    interpolation=T.InterpolationMode.BICUBIC,
                    antialias=True,
                ),
                T.CenterCrop(size),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )
