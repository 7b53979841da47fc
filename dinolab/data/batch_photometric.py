"""DINO's colour and blur augmentations on a batch of float images [n, 3, H, W] in [0, 1].

The same maths as torchvision's tensor functionals (`adjust_brightness / contrast / saturation
/ hue`, `rgb_to_grayscale`, `gaussian_blur`, `solarize`), with one parameter per image instead
of one per call, so a whole batch of views is jittered with a few large ops rather than many
small PIL calls. `color_jitter` keeps `ColorJitter`'s random order of the four ops per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale (ITU-R 601-2 luma)


def _per_image(f: torch.Tensor) -> torch.Tensor:
    return f.to(torch.float32).view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma [n, 1, H, W] of RGB images [n, 3, H, W]."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor | float, f: torch.Tensor) -> torch.Tensor:
    f = _per_image(f)
    return (f * a + (1.0 - f) * b).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Image i scaled by f[i] (towards black), clipped to [0, 1]."""
    return _blend(x, 0.0, f)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Image i blended with its mean luma by f[i]."""
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Image i blended with its own luma image by f[i]."""
    return _blend(x, grayscale(x), f)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    same = maxc == minc
    cr = maxc - minc
    s = cr / torch.where(same, torch.ones_like(maxc), maxc)
    div = torch.where(same, torch.ones_like(maxc), cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The sector formula: channel n = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6."""
    h6, vs = h * 6.0, v * s
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + h6, 6.0)
        out.append(v - vs * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(out, 1)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Hue of image i rotated by f[i] turns (f in [-0.5, 0.5]), through HSV as torchvision."""
    h, s, v = _rgb_to_hsv(x)
    h = torch.remainder(h + f.to(torch.float32).view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, s, v)


JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(
    x: torch.Tensor, apply: torch.Tensor, order: torch.Tensor, factors: torch.Tensor
) -> torch.Tensor:
    """`ColorJitter` on the images where `apply` [n] holds, each with its own op `order`
    [n, 4] (a permutation of 0-3: brightness, contrast, saturation, hue) and `factors` [n, 4]."""
    x = x.clone()
    for step in range(4):
        for op, fn in enumerate(JITTER_OPS):
            idx = (apply & (order[:, step] == op)).nonzero()[:, 0]
            if idx.numel():
                x[idx] = fn(x[idx], factors[idx, op])
    return x


def to_grayscale_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images where mask [n] holds replaced by their luma on all three channels."""
    idx = mask.nonzero()[:, 0]
    if idx.numel():
        x = x.clone()
        x[idx] = grayscale(x[idx]).expand(-1, 3, -1, -1)
    return x


def blur_kernel_size(sigma_max: float, size: int) -> int:
    """Odd kernel covering +-3 sigma (as Pillow's box-blur Gaussian reaches), within the image."""
    half = max(1, math.ceil(3.0 * sigma_max))
    return 2 * min(half, size - 1) + 1


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Each image blurred by its own sigma: separable, reflect padding (torchvision's tensor
    `gaussian_blur` with kernel [kernel_size] and that sigma)."""
    n, c, h, w = x.shape
    half = kernel_size // 2
    t = torch.linspace(-half, half, kernel_size, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None] / sigma.to(torch.float32)[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [n * c, k]
    y = F.pad(x.reshape(1, n * c, h, w), (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, kernel_size), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def blur_where(x: torch.Tensor, mask: torch.Tensor, sigma: torch.Tensor, kernel_size: int):
    """Images where mask [n] holds blurred with their sigma [n]."""
    idx = mask.nonzero()[:, 0]
    if idx.numel():
        x = x.clone()
        x[idx] = gaussian_blur(x[idx], sigma[idx], kernel_size)
    return x


def solarize_where(x: torch.Tensor, mask: torch.Tensor, threshold: float = 128 / 255):
    """Images where mask [n] holds: values >= threshold inverted (Pillow's solarize(128))."""
    flip = mask.view(-1, 1, 1, 1) & (x >= threshold)
    return torch.where(flip, 1.0 - x, x)
