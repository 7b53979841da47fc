"""Pictures of what a curation stage did: rows of thumbnails (one row per group of images)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from dinolab.data.datasets import decode_image


def duplicate_groups_figure(groups: list[list[str]], out: str | Path, thumb: int = 96) -> Path:
    """One row per group of image paths, thumbnails side by side; unreadable files grey."""
    cols = max(len(g) for g in groups)
    pad = 4
    sheet = Image.new(
        "RGB", (cols * (thumb + pad) + pad, len(groups) * (thumb + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for r, group in enumerate(groups):
        for c, path in enumerate(group):
            x, y = pad + c * (thumb + pad), pad + r * (thumb + pad)
            try:
                img = decode_image(path)
                img.thumbnail((thumb, thumb))
                sheet.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
            except Exception:  # noqa: BLE001 - a file gone since embedding: a grey square
                draw.rectangle([x, y, x + thumb, y + thumb], fill=(160, 160, 160))
    out = Path(out)
    sheet.save(out)
    return out
