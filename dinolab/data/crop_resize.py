"""RandomResizedCrop on a whole batch: torchvision's box sampling, PIL's bicubic resampling.

The boxes follow `torchvision.transforms.RandomResizedCrop.get_params` (area fraction ~ U(scale),
log aspect ~ U(log 3/4, log 4/3), 10 tries, centre-crop fallback), drawn for every view at once.
Each crop is resized with the separable weights Pillow computes for `Image.resize(BICUBIC)`
(antialiased: the kernel widens by the downscale factor), as two matmuls per view slot, with
Pillow's rounding to uint8 after each pass and the pass order Pillow 13 was measured to use
(vertical first when the crop is taller than the output and not much wider). On noise images,
where the order matters through the clipping of overshoot, the result equals
`img.crop(box).resize(...)` to within one grey level (Pillow's fixed-point coefficients) for
upscaling and downscaling alike. Bilinear `roi_align` / `grid_sample` are cheaper but blur.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

RATIO = (3 / 4, 4 / 3)
TRIES = 10


def _uniform(shape: tuple[int, ...], lo: float, hi: float, g: torch.Generator | None):
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)


def sample_boxes(
    heights: torch.Tensor,
    widths: torch.Tensor,
    scale: Sequence[float],
    g: torch.Generator | None = None,
    ratio: Sequence[float] = RATIO,
) -> torch.Tensor:
    """LongTensor [n, 4] of (top, left, height, width): one RandomResizedCrop box per image size.

    All tries are drawn up front (the distribution of torchvision's lazy draws, not its
    sequence); the first try that fits wins, else the centre crop clamped to `ratio`.
    """
    n = heights.numel()
    hs, ws = heights.double(), widths.double()
    target = (hs * ws)[:, None] * _uniform((n, TRIES), scale[0], scale[1], g)
    log_ratio = _uniform((n, TRIES), math.log(ratio[0]), math.log(ratio[1]), g)
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= ws[:, None]) & (h > 0) & (h <= hs[:, None])
    first = fits.double().argmax(1, keepdim=True)  # index of the first try that fits
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    # centre-crop fallback where no try fits
    in_ratio = ws / hs
    fb_w = torch.where(in_ratio > ratio[1], torch.round(hs * ratio[1]), ws)
    fb_h = torch.where(in_ratio < ratio[0], torch.round(ws / ratio[0]), hs)
    none = ~fits.any(1)
    h, w = torch.where(none, fb_h, h), torch.where(none, fb_w, w)
    u_top, u_left = torch.rand((2, n), generator=g, dtype=torch.float64)
    top = torch.floor(u_top * (hs - h + 1)).clamp(max=hs - h)
    left = torch.floor(u_left * (ws - w + 1)).clamp(max=ws - w)
    top = torch.where(none, torch.floor((hs - h) / 2), top)
    left = torch.where(none, torch.floor((ws - w) / 2), left)
    return torch.stack([top, left, h, w], 1).long()


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    """Pillow's bicubic filter (a = -0.5), support 2."""
    a = -0.5
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resample_weights(
    start: torch.Tensor, length: torch.Tensor, out: int, extent: int
) -> torch.Tensor:
    """Float [n, out, extent]: Pillow's normalised bicubic weights resizing the pixels
    [start, start + length) of each row to `out` pixels (antialiased when shrinking).

    Only the taps within the filter's support are evaluated ([n, out, taps]), then scattered.
    """
    length = length.double()[:, None, None]
    scale = length / out
    filter_scale = scale.clamp(min=1.0)
    taps = 2 * math.ceil(2.0 * float(filter_scale.max())) + 2
    center = (torch.arange(out, dtype=torch.float64)[None, :, None] + 0.5) * scale
    first = torch.floor(center - 2.0 * filter_scale + 0.5)
    x = first + torch.arange(taps, dtype=torch.float64)  # [n, out, taps]
    w = _bicubic((x + 0.5 - center) / filter_scale)
    w = w * ((x >= 0) & (x < length))  # the crop only, as torchvision crops first
    w = w / w.sum(-1, keepdim=True)
    at = (x + start.double()[:, None, None]).clamp(0, extent + taps - 1).long()
    dense = torch.zeros(w.shape[0], out, extent + taps, dtype=torch.float32)
    dense.scatter_add_(2, at, w.float())  # out-of-crop taps add zeros
    return dense[..., :extent]


def _round_u8(x: torch.Tensor) -> torch.Tensor:
    """Pillow's rounding of each pass to 8 bits (half up, clipped)."""
    return torch.floor_(x.add_(0.5)).clamp_(0, 255)


def _windows(canvas: torch.Tensor, src: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Box k of image src[k] at the top left of a [n, C, h_max, w_max] window (edge pixels
    repeated past the box; they get zero weight): the matmuls then span the crops only."""
    _, _, height, width = canvas.shape
    h_max, w_max = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    rows = (boxes[:, :1] + torch.arange(h_max)).clamp_(max=height - 1)
    cols = (boxes[:, 1:2] + torch.arange(w_max)).clamp_(max=width - 1)
    return canvas[src[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def crop_resize(
    canvas: torch.Tensor,
    src: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Float images [B, C, H, W] in 0..255, view sources src [n] and boxes [n, 4] -> views
    [n, C, size, size] in 0..255: view k is box k of image src[k], resized like Pillow's
    bicubic, mirrored left-right where flip[k] (its horizontal weights reversed)."""
    n, c = src.shape[0], canvas.shape[1]
    out = canvas.new_empty(n, c, size, size)
    h, w = boxes[:, 2], boxes[:, 3]
    tall = (h > size) & (2 * w < h + size)  # Pillow 13's pass order (measured, see docstring)
    for vertical_first in (False, True):
        i = (tall == vertical_first).nonzero()[:, 0]
        if not i.numel():
            continue
        b = i.numel()
        if int(h[i].max()) * int(w[i].max()) < 0.5 * canvas.shape[2] * canvas.shape[3]:
            win, start = _windows(canvas, src[i], boxes[i]), torch.zeros_like(boxes[i, :2])
        else:
            win, start = canvas[src[i]], boxes[i, :2]
        extent = max(win.shape[2], win.shape[3])
        weights = resample_weights(start.T.reshape(-1), torch.cat([h[i], w[i]]), size, extent)
        wy = weights[:b, :, : win.shape[2]][:, None]  # [b, 1, size, H]
        wx = weights[b:, :, : win.shape[3]]  # [b, size, W]
        if flip is not None:
            wx = torch.where(flip[i, None, None], wx.flip(1), wx)
        wx = wx.transpose(1, 2)[:, None]  # [b, 1, W, size]
        if vertical_first:
            out[i] = _round_u8(_round_u8(wy @ win) @ wx)
        else:
            out[i] = _round_u8(wy @ _round_u8(win @ wx))
    return out
