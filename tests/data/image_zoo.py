"""Tiny images for the data tests: every decodable mode and every kind of broken file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def gradient(w: int = 20, h: int = 16) -> np.ndarray:
    """An RGB image with edges and colour, so crops and blurs change it."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, ((x // 4 + y // 4) % 2) * 255], -1).astype(
        np.uint8
    )


def write_zoo(root: Path) -> dict[str, Path]:
    """Write one file per case; returns name -> path."""
    root.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(gradient())
    files: dict[str, Path] = {}

    def save(name: str, img: Image.Image, **kw) -> None:
        files[name] = root / name
        img.save(files[name], **kw)

    save("rgb.jpg", rgb, quality=95)
    save("rgb.png", rgb)
    save("gray.png", rgb.convert("L"))
    rgba = rgb.convert("RGBA")
    rgba.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent -> white
    save("rgba.png", rgba)
    save("la.png", rgb.convert("LA"))
    save("palette.gif", rgb.convert("P"))
    save("rgb.bmp", rgb)
    save("rgb.webp", rgb)
    save("gray.pgm", rgb.convert("L"))
    save("rgb.ppm", rgb)
    save("upper.JPEG", rgb)
    sixteen = np.array([[0, 256, 32768, 65535]] * 3, dtype=np.uint16)
    save("deep16.png", Image.fromarray(sixteen))
    save("deep16.tif", Image.fromarray(sixteen))
    save("cmyk.jpg", rgb.convert("CMYK"))
    save("tiny.png", Image.fromarray(gradient(5, 7)))
    (root / "sub").mkdir()
    save("sub/nested.jpg", rgb)
    jpg = files["rgb.jpg"].read_bytes()
    files["zero.jpg"] = root / "zero.jpg"
    files["zero.jpg"].write_bytes(b"")
    files["truncated.jpg"] = root / "truncated.jpg"
    files["truncated.jpg"].write_bytes(jpg[: len(jpg) // 2])
    files["notimage.jpg"] = root / "notimage.jpg"
    files["notimage.jpg"].write_text("this is a text file, not a JPEG\n")
    # never listed: hidden file, hidden folder, non-image extension
    rgb.save(root / ".hidden.jpg")
    (root / ".cache").mkdir()
    rgb.save(root / ".cache" / "x.jpg")
    (root / "notes.txt").write_text("not an image")
    return files


BROKEN = ("zero.jpg", "truncated.jpg", "notimage.jpg")
