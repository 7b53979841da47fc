"""DINO multi-crop on whole batches of uint8 images (`data.augment_impl: batched`).

`MultiCropAugmentation` runs ~20 small PIL calls per view; on 32 px images that is ~2 ms of
CPU per image, a third of a CPU training step. Here the dataset only decodes (`ToUint8Tensor`)
and the collate, still in the loader's workers, cuts all views of a batch at once with the
same recipe: torchvision's RandomResizedCrop boxes, Pillow's bicubic antialiased resize
(`crop_resize`), flip, ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8 in a random order per view,
grayscale p 0.2, Gaussian blur (`data.blur_p`, sigma scaled with the crop size as in
`augment`), solarize (`data.solarize_p`, global 2), normalisation (`batch_photometric`).
All randomness comes from one generator seeded by the batch's per-sample seeds (as the iBOT
masks are), so the views are a pure function of (images, seeds): resume and worker count
change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from dinolab.data import batch_photometric as P
from dinolab.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCropAugmentation,
    _scaled_sigma,
    recipe_arguments,
    validate_recipe,
)
from dinolab.data.crop_resize import crop_resize, sample_boxes
from dinolab.data.masking import batch_seed

AUGMENT_IMPLS = ("pil", "batched")
SEED_SALT = 0x5EED_A065  # keeps the views' random stream apart from the masks' (same seeds)
JITTER = {"p": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}
FLIP_P, GRAY_P = 0.5, 0.2


class ToUint8Tensor:
    """PIL RGB image -> uint8 tensor [3, H, W] (the per-sample work of the batched path)."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _canvas(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Float [B, 3, Hmax, Wmax] in 0..255, each image in its top-left corner, zeros around."""
    height = max(im.shape[1] for im in images)
    width = max(im.shape[2] for im in images)
    canvas = torch.zeros(len(images), 3, height, width)
    for i, im in enumerate(images):
        canvas[i, :, : im.shape[1], : im.shape[2]] = im
    return canvas


class _ViewGroup:
    """Views of one size: their crop scale, blur sigma range and per-slot probabilities."""

    def __init__(self, size, scale, sigma, blur_p, solarize_p) -> None:
        self.size, self.scale, self.sigma = size, tuple(scale), sigma
        self.blur_p, self.solarize_p = list(blur_p), list(solarize_p)
        self.kernel_size = P.blur_kernel_size(sigma[1], size)

    def _per_view(self, probs: list[float], batch: int) -> torch.Tensor:
        return torch.tensor(probs, dtype=torch.float64).repeat_interleave(batch)

    def draw(self, sizes: torch.Tensor, g: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Every random choice for the views of images with sizes [B, 2] (view-major)."""
        batch, slots = sizes.shape[0], len(self.blur_p)
        n = slots * batch
        boxes = sample_boxes(sizes[:, 0].repeat(slots), sizes[:, 1].repeat(slots), self.scale, g)
        rand = torch.rand((6, n), generator=g, dtype=torch.float64)
        b, c, s, h = (JITTER[k] for k in ("brightness", "contrast", "saturation", "hue"))
        lo = torch.tensor([1 - b, 1 - c, 1 - s, -h], dtype=torch.float64)
        hi = torch.tensor([1 + b, 1 + c, 1 + s, h], dtype=torch.float64)
        return {
            "boxes": boxes,
            "flip": rand[0] < FLIP_P,
            "jitter": rand[1] < JITTER["p"],
            "gray": rand[2] < GRAY_P,
            "blur": rand[3] < self._per_view(self.blur_p, batch),
            "solarize": rand[4] < self._per_view(self.solarize_p, batch),
            "sigma": self.sigma[0] + (self.sigma[1] - self.sigma[0]) * rand[5],
            "order": torch.rand((n, 4), generator=g).argsort(1),  # a permutation per view
            "factors": lo + (hi - lo) * torch.rand((n, 4), generator=g, dtype=torch.float64),
        }

    def __call__(self, canvas, sizes, g) -> torch.Tensor:
        """Float [slots * B, 3, S, S] in [0, 1], view-major (slot 0 of every image first)."""
        d = self.draw(sizes, g)
        src = torch.arange(canvas.shape[0]).repeat(len(self.blur_p))
        views = crop_resize(canvas, src, d["boxes"], self.size, d["flip"]).div_(255.0)
        views = P.color_jitter(views, d["jitter"], d["order"], d["factors"])
        views = P.to_grayscale_where(views, d["gray"])
        views = P.blur_where(views, d["blur"], d["sigma"], self.kernel_size)
        return P.solarize_where(views, d["solarize"])


class BatchedMultiCrop:
    """uint8 images [3, H_i, W_i] + per-sample seeds -> {"global_crops": Tensor[2B, 3, G, G],
    "local_crops": Tensor[N*B, 3, L, L] or None}, view-major as `collate_multicrop` stacks
    `MultiCropAugmentation`'s views, with the same recipe and probabilities."""

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
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        g_sigma = _scaled_sigma(global_size, "global")
        self.globals = _ViewGroup(global_size, global_scale, g_sigma, blur_p[:2], (0.0, solarize_p))
        l_sigma = _scaled_sigma(local_size, "local")
        self.locals = _ViewGroup(
            local_size, local_scale, l_sigma, [blur_p[2]] * num_local_crops,
            [0.0] * num_local_crops,
        )  # fmt: skip

    @classmethod
    def from_config(cls, data: Any) -> BatchedMultiCrop:
        """Build from a `DataConfig` (or anything with the same attributes)."""
        return cls(**recipe_arguments(data))

    def generator(self, seeds: Sequence[int | None]) -> torch.Generator | None:
        """The batch's generator (None, torch's global RNG, when a sample has no seed)."""
        if not seeds or any(s is None for s in seeds):
            return None
        return torch.Generator().manual_seed(batch_seed([*seeds, SEED_SALT]))

    def __call__(
        self, images: Sequence[torch.Tensor], seeds: Sequence[int | None]
    ) -> dict[str, torch.Tensor | None]:
        g = self.generator(seeds)
        canvas = _canvas(images)
        sizes = torch.tensor([im.shape[1:] for im in images], dtype=torch.long)
        global_crops = (self.globals(canvas, sizes, g) - self.mean) / self.std
        local_crops = None
        if self.num_local_crops:
            local_crops = (self.locals(canvas, sizes, g) - self.mean) / self.std
        return {"global_crops": global_crops, "local_crops": local_crops}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(global {self.globals.size} px x2, local "
            f"{self.locals.size} px x{self.num_local_crops})"
        )


def multicrop_pipeline(data: Any) -> tuple[Any, BatchedMultiCrop | None]:
    """(per-sample transform, batch augmentation for the collate) for `data.augment_impl`."""
    impl = getattr(data, "augment_impl", "pil")
    if impl == "pil":
        return MultiCropAugmentation.from_config(data), None
    if impl == "batched":
        return ToUint8Tensor(), BatchedMultiCrop.from_config(data)
    raise ValueError(f"Unknown data.augment_impl '{impl}': use one of {', '.join(AUGMENT_IMPLS)}")
