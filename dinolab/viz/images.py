"""The pictures' inputs and outputs: a ViT to look into, images at a patch multiple, overlays.

Every figure in `dinolab.viz` reads its images and model through here, so a size that the
patch does not divide, a missing file or a ResNet are reported the same way everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from dinolab.data.augment import IMAGENET_MEAN, IMAGENET_STD
from dinolab.data.datasets import ImageFileList, decode_image, find_images
from dinolab.models.vision_transformer import VisionTransformer

log = logging.getLogger("dinolab")


def as_vit(model: nn.Module | str | Path, **load_kwargs) -> VisionTransformer:
    """The eval-mode ViT of a module, hub name, weights file or run directory.

    Attention maps, PCA and matching read a ViT's tokens, so a ResNet is refused by name.
    """
    if not isinstance(model, nn.Module):
        from dinolab.hub import load

        model = load(model, **load_kwargs)
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, VisionTransformer):
        raise ValueError(
            f"the model is a {type(backbone).__name__}, not a ViT: attention maps, PCA and "
            "matching need a ViT (e.g. dino_vits16 or dinov2_vits14)."
        )
    return backbone.eval()


def patch_multiple(h: int, w: int, patch: int, name: str = "image") -> tuple[int, int]:
    """(h, w) rounded to the nearest multiples of the patch; says so when it had to round."""
    nh, nw = max(round(h / patch), 1) * patch, max(round(w / patch), 1) * patch
    if (nh, nw) != (h, w):
        log.info(
            "%s is %dx%d, not a multiple of the patch size %d: resized to %dx%d",
            name, h, w, patch, nh, nw,
        )  # fmt: skip
    return nh, nw


def target_size(h: int, w: int, size: int | None) -> tuple[int, int]:
    """The shorter side scaled to `size` (aspect kept); the image's own size when None."""
    if not size:
        return h, w
    scale = size / min(h, w)
    return max(round(h * scale), 1), max(round(w * scale), 1)


def image_paths(items: Sequence[str | Path]) -> list[Path]:
    """Image files from files, folders (their images, sorted) and .txt lists of paths (read as
    `data.path` lists are: relative to the list's folder, `#` comments)."""
    paths: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            paths.extend(Path(f) for f in sorted(find_images(p)))
        elif p.suffix == ".txt" and p.is_file():
            paths.extend(Path(f) for f in ImageFileList(p).paths)
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"No image file or folder at '{p}': check the path.")
    if not paths:
        raise ValueError(f"No images found in {[str(i) for i in items]}.")
    return paths


def load_image(
    path: str | Path,
    patch: int,
    size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict:
    """{"pixels": [1, 3, H, W] normalised, "rgb": uint8 [H, W, 3], "name": file stem}.

    H and W are multiples of the patch: the shorter side is scaled to `size` first (if given).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at '{path}': check the path.")
    try:
        img = decode_image(str(path))
    except Exception as e:  # noqa: BLE001 - any decoder failure: the file is not an image
        raise ValueError(
            f"'{path}' is not an image Pillow can read ({type(e).__name__}): pass image files "
            "(.jpg, .png, ...) or folders of them."
        ) from None
    h, w = target_size(img.height, img.width, size)
    h, w = patch_multiple(h, w, patch, f"'{path.name}' at {h}x{w}")
    rgb = np.asarray(img.resize((w, h), Image.BICUBIC))
    return {"pixels": normalize(rgb, mean, std), "rgb": rgb, "name": path.stem}


def normalize(rgb: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 [H, W, 3] -> float [1, 3, H, W], normalised as the backbone was trained."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    return ((x - m) / s).unsqueeze(0)


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Patch-grid maps [..., h, w] -> [..., H, W] (nearest keeps the patch grid visible)."""
    lead = maps.shape[:-2]
    x = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    kw = {} if mode == "nearest" else {"align_corners": False}
    x = torch.nn.functional.interpolate(x, size=size, mode=mode, **kw)
    return x.reshape(*lead, *size)


HEAT_CMAP = "inferno"
HEAT_LABEL = "attention / the map's peak"


def peak_scaled(heat: np.ndarray) -> np.ndarray:
    """A map [H, W] divided by its peak: 0 is no attention, 1 the most; one colour bar fits
    every panel (each head's own range would need its own bar)."""
    h = np.clip(np.asarray(heat, dtype=np.float64), 0.0, None)
    return h / max(float(h.max()), 1e-12)


def heat_over_dimmed(
    rgb: np.ndarray, heat: np.ndarray, dim: float = 0.45, cmap: str = HEAT_CMAP
) -> np.ndarray:
    """uint8 [H, W, 3]: the photo dimmed and half greyed, the heat map's colour laid over it
    more strongly where the heat is higher, so the photo stays legible where nothing is seen.

    The colours are `cmap` at `peak_scaled(heat)`: a colour bar of `cmap` on [0, 1] reads them.
    """
    import matplotlib

    h = peak_scaled(heat)
    photo = rgb.astype(np.float64)
    base = dim * (0.5 * photo + 0.5 * photo.mean(-1, keepdims=True))
    colour = matplotlib.colormaps[cmap](h)[..., :3] * 255.0
    alpha = (0.35 + 0.6 * h)[..., None]
    return np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)


def short(name: str, n: int = 16) -> str:
    """A file stem short enough for a panel title (long hashes overlap their neighbours)."""
    return name if len(name) <= n else name[: n - 1] + "…"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | Path) -> Path:
    """Write a matplotlib figure as PNG (parent folders created) and close it."""
    plt = pyplot()
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"'{out}' must end in .png.")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
