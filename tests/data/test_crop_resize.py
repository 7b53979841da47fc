"""Batched RandomResizedCrop: torchvision's box distribution, Pillow's bicubic pixels."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from dinolab.data.crop_resize import crop_resize, sample_boxes


def _stats(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area fraction and log aspect (w / h) of boxes [n, 4] (top, left, h, w)."""
    return np.stack(
        [boxes[:, 2] * boxes[:, 3] / (height * width), np.log(boxes[:, 3] / boxes[:, 2])], 1
    )


def test_boxes_follow_torchvision_distribution():
    # 3000 draws: quartiles of the area fraction and log aspect agree with torchvision's
    # get_params within 0.03 (their sampling error at n=3000 is ~0.01; integer rounding of
    # the box sides, identical in both, dominates the shape of both distributions).
    n, height, width, scale = 3000, 32, 24, (0.05, 0.4)
    torch.manual_seed(0)
    ref = np.array([T.RandomResizedCrop.get_params(torch.zeros(1, height, width), scale,
                                                    (3 / 4, 4 / 3)) for _ in range(n)])  # fmt: skip
    g = torch.Generator().manual_seed(1)
    got = sample_boxes(torch.full((n,), height), torch.full((n,), width), scale, g).numpy()
    assert (got[:, 0] >= 0).all() and (got[:, 0] + got[:, 2] <= height).all()
    assert (got[:, 1] >= 0).all() and (got[:, 1] + got[:, 3] <= width).all()
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    a, b = _stats(ref, height, width), _stats(got, height, width)
    assert np.abs(np.quantile(a, q, axis=0) - np.quantile(b, q, axis=0)).max() < 0.03
    # the position is uniform over the free range: mean top / (height - h) ~ 0.5 in both
    free = lambda x: (x[:, 0] / np.maximum(height - x[:, 2], 1)).mean()  # noqa: E731
    assert abs(free(ref) - free(got)) < 0.03


def test_no_fitting_try_falls_back_to_torchvision_centre_crop():
    # 100 x 10 image, 90-100 % of the area at aspect <= 4/3 never fits: a centred 10 x 13 box.
    heights, widths = torch.tensor([10, 100]), torch.tensor([100, 10])
    got = sample_boxes(heights, widths, (0.9, 1.0), torch.Generator().manual_seed(0))
    for k in range(2):
        h, w = int(heights[k]), int(widths[k])
        ref = T.RandomResizedCrop.get_params(torch.zeros(1, h, w), (0.9, 1.0), (3 / 4, 4 / 3))
        assert got[k].tolist() == list(ref)


def _smooth(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Low-frequency colour image: no overshoot gets clipped, whatever the pass order."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    chans = [np.sin(2 * math.pi * (rng.random() * 2 * x + rng.random() * 2 * y)) for _ in range(3)]
    return ((np.stack(chans, -1) * 0.4 + 0.5) * 255).astype(np.uint8)


def _pil_views(img: np.ndarray, boxes: torch.Tensor, size: int, flip: torch.Tensor):
    pil = Image.fromarray(img)
    out = []
    for (i, j, h, w), f in zip(boxes.tolist(), flip.tolist(), strict=True):
        view = pil.crop((j, i, j + w, i + h)).resize((size, size), Image.BICUBIC)
        view = view.transpose(Image.FLIP_LEFT_RIGHT) if f else view
        out.append(torch.from_numpy(np.array(view)).permute(2, 0, 1).float())
    return torch.stack(out)


def test_crops_match_pillow_bicubic_within_one_level():
    # torchvision's PIL path: img.crop(box).resize(size, BICUBIC) (antialiased), then flip.
    # Upscaled (32 px from up to 32 px crops) and downscaled (16 px from up to 40 px crops),
    # on a smooth image and on noise (where Pillow's pass order shows through the clipping).
    g = torch.Generator().manual_seed(0)
    for img in (_smooth(40, 36), np.random.default_rng(1).integers(0, 256, (40, 36, 3))):
        img = img.astype(np.uint8)
        canvas = torch.from_numpy(img).permute(2, 0, 1).float()[None]
        for size, scale in ((32, (0.3, 0.7)), (16, (0.05, 1.0)), (48, (0.2, 1.0))):
            boxes = sample_boxes(torch.full((40,), 40), torch.full((40,), 36), scale, g)
            flip = torch.rand(40, generator=g) < 0.5
            got = crop_resize(canvas, torch.zeros(40, dtype=torch.long), boxes, size, flip)
            ref = _pil_views(img, boxes, size, flip)
            diff = (got - ref).abs()
            assert diff.max() <= 1, (size, float(diff.max()))
            assert (diff > 0).float().mean() < 0.01


def test_each_image_is_cropped_within_its_own_extent_on_a_padded_canvas():
    small, big = _smooth(20, 30, 1), _smooth(40, 40, 2)
    canvas = torch.zeros(2, 3, 40, 40)
    canvas[0, :, :20, :30] = torch.from_numpy(small).permute(2, 0, 1).float()
    canvas[1] = torch.from_numpy(big).permute(2, 0, 1).float()
    g = torch.Generator().manual_seed(3)
    boxes = sample_boxes(torch.tensor([20, 40] * 20), torch.tensor([30, 40] * 20), (0.05, 1), g)
    src = torch.tensor([0, 1] * 20)
    assert (boxes[::2, 0] + boxes[::2, 2] <= 20).all()
    assert (boxes[::2, 1] + boxes[::2, 3] <= 30).all()
    got = crop_resize(canvas, src, boxes, 16)
    flip = torch.zeros(20, dtype=torch.bool)
    assert (got[::2] - _pil_views(small, boxes[::2], 16, flip)).abs().max() <= 1
    assert (got[1::2] - _pil_views(big, boxes[1::2], 16, flip)).abs().max() <= 1
