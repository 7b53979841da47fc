"""Attention-map videos: a folder of frames to a GIF or MP4 of the CLS attention, frame by frame.

DINO's videos show the attention following objects through motion without any tracking.
Each output frame is the photo beside its attention heat map; a preview PNG of a few frames,
decoded back from the written file (so it shows what the format kept: GIF's 256-colour
palette, MP4's compression), is written next to it, one per format (`att_gif_preview.png`,
`att_mp4_preview.png`). GIFs are written with imageio (Pillow), MP4s with imageio-ffmpeg.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from dinolab.data.datasets import decode_image
from dinolab.extras import require
from dinolab.hardware import autocast
from dinolab.viz.attention import cls_attention
from dinolab.viz.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_vit,
    heat_over_dimmed,
    image_paths,
    load_image,
    normalize,
    pyplot,
    save_figure,
    upsample,
)

VIDEO_SUFFIXES = (".gif", ".mp4")


def _write(frames: list[np.ndarray], out: Path, fps: float) -> None:
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise ValueError("writing videos needs imageio: pip install imageio.") from None
    if out.suffix == ".gif":
        imageio.mimwrite(out, frames, duration=1000.0 / fps, loop=0)
        return
    require("imageio_ffmpeg", "viz-video", f"Writing '{out}' (MP4; or write a .gif)")
    imageio.mimwrite(out, frames, fps=fps, codec="libx264", macro_block_size=2, quality=7)


def attention_video(
    model: nn.Module | str | Path,
    frames: str | Path | Sequence[str | Path],
    out: str | Path,
    size: int | None = 320,
    fps: float = 8.0,
    block: int = -1,
    head: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> dict:
    """Write `out` (.gif or .mp4) from the frames (a folder, sorted by name, or a list).

    `head` picks one head; None draws the head average. Frames are resized to the first
    frame's size. Returns {"video": path, "preview": PNG path, "frames": count}.
    """
    out = Path(out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"'{out}' must end in .gif or .mp4.")
    if fps <= 0:
        raise ValueError(f"fps={fps} must be positive.")
    vit = as_vit(model).to(device)
    if head is not None and not 0 <= head < vit.num_heads:
        raise ValueError(f"head {head} does not exist: the model has heads 0..{vit.num_heads - 1}.")
    paths = image_paths([frames] if isinstance(frames, (str, Path)) else frames)
    first = load_image(paths[0], vit.patch_size, size, mean, std)["rgb"]
    h, w = first.shape[:2]  # a multiple of the patch; every frame is resized to it
    video = []
    for path in paths:
        rgb = np.asarray(decode_image(str(path)).resize((w, h), Image.BICUBIC))
        with autocast(device, precision):  # the forward only: the maps are float32
            maps = cls_attention(vit, normalize(rgb, mean, std).to(device), block)
        grid = maps["mean"][0] if head is None else maps["heads"][0, head]
        heat = upsample(grid.cpu(), rgb.shape[:2]).numpy()
        video.append(np.concatenate([rgb, heat_over_dimmed(rgb, heat)], axis=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(video, out, fps)
    picks = sorted({round(i) for i in np.linspace(0, len(video) - 1, min(4, len(video)))})
    kind = out.suffix.lower().lstrip(".").upper()
    preview = _preview(stored_frames(out, picks), preview_path(out), kind)
    return {"video": out, "preview": preview, "frames": len(video)}


def preview_path(video: Path) -> Path:
    """`att.gif` -> `att_gif_preview.png`, `att.mp4` -> `att_mp4_preview.png`: one each."""
    return video.with_name(f"{video.stem}_{video.suffix.lower().lstrip('.')}_preview.png")


def stored_frames(video: Path, picks: Sequence[int]) -> dict[int, np.ndarray]:
    """Frames `picks` (RGB uint8) decoded back from the written video: what its viewers see."""
    import imageio.v2 as imageio

    frames, last = {}, max(picks)
    with imageio.get_reader(video) as reader:
        for i, frame in enumerate(reader):
            if i in picks:
                frames[i] = np.asarray(frame)[..., :3]
            if i >= last:
                break
    return frames


def _preview(frames: dict[int, np.ndarray], out: Path, kind: str) -> Path:
    """The picked frames stacked in one PNG (a quick look without a player)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(frames), 1, figsize=(6, 3 * len(frames)), squeeze=False)
    for ax, (i, frame) in zip(axes[:, 0], sorted(frames.items()), strict=True):
        ax.imshow(frame)
        ax.set_title(f"frame {i}, as stored in the {kind}", fontsize=8)
        ax.axis("off")
    return save_figure(fig, out)
