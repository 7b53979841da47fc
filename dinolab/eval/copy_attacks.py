"""Image edits that make Copydays-like copies: JPEG, crops, blur, rotation, overlays, print-scan.

Copydays (Jegou et al. 2008) attacks 157 holiday photos with JPEG at quality 3-75, crops
removing 10-80% of the surface, and a "strong" set of manual edits (print and scan, blur,
paint, rotations, text and logos). Each function here is one such edit, driven by an explicit
random generator so a set can be rebuilt exactly from its seed.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

JPEG_QUALITIES = (3, 5, 8, 10, 15, 20, 30, 50, 75)
CROP_PERCENTS = (10, 15, 20, 30, 40, 50, 60, 70, 80)


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode at a JPEG quality (1-95)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def crop_surface(img: Image.Image, removed_percent: float, rng: np.random.Generator):
    """Keep a random window of (100 - removed_percent)% of the area, same aspect ratio."""
    w, h = img.size
    side = math.sqrt(1 - removed_percent / 100)
    cw, ch = max(1, round(w * side)), max(1, round(h * side))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur, sigma 1-3 % of the short side."""
    sigma = min(img.size) * rng.uniform(0.01, 0.03)
    return img.filter(ImageFilter.GaussianBlur(radius=max(sigma, 0.5)))


def rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotation by 5-30 degrees either way, corners filled black, size kept."""
    angle = float(rng.uniform(5, 30) * rng.choice([-1, 1]))
    return img.rotate(angle, resample=Image.BICUBIC, fillcolor=(0, 0, 0))


def colour(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation each scaled by 0.6-1.4."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(0.6, 1.4)))
    return img


def overlay(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Text and a filled shape painted over part of the image (captions, logos, paint)."""
    img = img.copy()
    draw = ImageDraw.Draw(img)
    w, h = img.size
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    x0, y0 = int(rng.integers(0, w // 2 + 1)), int(rng.integers(0, h // 2 + 1))
    x1, y1 = x0 + int(w * rng.uniform(0.15, 0.35)), y0 + int(h * rng.uniform(0.15, 0.35))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    text = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(4, 9))))
    font = ImageFont.load_default(size=max(8, h // 6))
    tx, ty = int(rng.integers(0, w // 3 + 1)), int(rng.integers(h // 2, h - h // 6 + 1))
    draw.text((tx, ty), text, fill=tuple(255 - c for c in fill), font=font)
    return img


def print_scan(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Print and scan, roughly: a slight perspective warp, a warm faded tint, paper noise,
    scanner blur and a JPEG save."""
    w, h = img.size
    d = 0.06 * min(w, h)
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [(x + rng.uniform(-d, d), y + rng.uniform(-d, d)) for x, y in corners]
    img = img.transform((w, h), Image.PERSPECTIVE, _perspective(corners, moved), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255
    arr = 0.08 + 0.84 * arr**1.2 * np.array([1.0, 0.96, 0.88])  # faded ink, warm paper
    arr = arr + rng.normal(0, 0.03, arr.shape)
    img = Image.fromarray(np.clip(arr * 255, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(radius=max(0.5, min(w, h) / 200)))
    return jpeg(img, int(rng.integers(50, 80)))


def _perspective(dst: list, src: list) -> list[float]:
    """Pillow's 8 PERSPECTIVE coefficients mapping output corners `dst` to input `src`."""
    a = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = np.array(src, dtype=np.float64).reshape(8)
    return np.linalg.solve(np.array(a, dtype=np.float64), b).tolist()


STRONG_EDITS = {
    "crop": lambda img, rng: crop_surface(img, rng.uniform(30, 60), rng),
    "rotate": rotate,
    "blur": blur,
    "colour": colour,
    "overlay": overlay,
    "print_scan": print_scan,
}


def strong_attack(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, list[str], int]:
    """Three distinct random edits of STRONG_EDITS in random order, and the JPEG quality
    (30-75) to save the result at: (edited image, edit names, quality). The caller saves it,
    so the image is JPEG-encoded once, at that quality."""
    names = [str(n) for n in rng.choice(sorted(STRONG_EDITS), size=3, replace=False)]
    for name in names:
        img = STRONG_EDITS[name](img, rng)
    return img, names, int(rng.integers(30, 76))
