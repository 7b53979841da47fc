"""Image datasets: a folder, a labelled ImageFolder, or a .txt list, decoded to RGB with Pillow.

Two promises the trainer relies on:
- a file that cannot be decoded never stops a run: `ds[i]` returns `{"error": ..., "index": i}`
  and the collate function drops it and reports it;
- `ds[(i, sample_seed)]` makes the augmentation a pure function of (image, sample_seed), so a
  resumed run sees exactly the same views whatever the number of workers.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)  # fmt: skip

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must be reported, not padded grey


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha over white, 16/32-bit scaled down, not clipped."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img).astype(np.float64)
        if img.mode.startswith("I;16") or (arr.size and arr.min() >= 0 and arr.max() <= 65535):
            arr = arr / 256.0  # 16-bit range (I;16, or "I" holding 16-bit PNG/TIFF data)
        elif arr.size and arr.max() > arr.min():  # float or wider int data: stretch min-max
            arr = (arr - arr.min()) * (255.0 / (arr.max() - arr.min()))
        gray = np.clip(np.floor(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def decode_image(path: str) -> Image.Image:
    """Open, fully decode (so truncation raises here) and convert one file to RGB."""
    with Image.open(path) as img:
        img.load()
        try:
            ImageOps.exif_transpose(img, in_place=True)  # camera photos: honour orientation
        except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken image
            pass
        return to_rgb(img)  # leaving `with` closes the file only; pixels stay loaded


def apply_seeded(transform: Callable, image: Any, seed: int | None) -> Any:
    """Run transform with torch's CPU RNG and `random` seeded by seed; the caller's RNG is kept."""
    if seed is None:
        return transform(image)
    py_state = random.getstate()
    try:
        random.seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # CPU only: never touches CUDA RNG
            return transform(image)
    finally:
        random.setstate(py_state)


def _reason(path: str, e: Exception) -> str:
    """A short human reason for a decode failure."""
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    if isinstance(e, UnidentifiedImageError):
        return "not an image Pillow can read"
    return f"{type(e).__name__}: {e}"


class ImageDataset(Dataset):
    """A list of image paths (and labels): decoding, error dicts, seeded transforms, cache."""

    def __init__(
        self,
        paths: list[str],
        labels: list[int] | None = None,
        transform: Callable | None = None,
        cache_decoded: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.targets = list(labels) if labels is not None else [-1] * len(self.paths)
        self.transform = transform
        self.cache_decoded = cache_decoded
        self._cache: dict[int, Image.Image | str] = {}  # per worker process

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> Image.Image:
        """Read and decode image `index` (raises on a bad file); subclasses read elsewhere."""
        return decode_image(self.paths[index])

    def _load(self, index: int) -> Image.Image | str:
        """The decoded image, or an error string "<path>: <reason>"."""
        if index in self._cache:
            return self._cache[index]
        path = self.paths[index]
        try:
            result: Image.Image | str = self._decode(index)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
            result = f"{path}: {_reason(path, e)}"
        if self.cache_decoded:
            self._cache[index] = result
        return result

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, (tuple, list)):
            index, seed = int(key[0]), int(key[1])
        else:
            index, seed = int(key), None
        img = self._load(index)
        if isinstance(img, str):
            return {"error": img, "index": index}
        if self.cache_decoded:
            img = img.copy()  # transforms must not alter the cached original
        out = apply_seeded(self.transform, img, seed) if self.transform else img
        path = self.paths[index]
        label = self.targets[index]
        return {"image": out, "label": label, "index": index, "path": path, "seed": seed}


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def find_images(root: str | Path) -> list[str]:
    """Every image under root (recursive), hidden files and folders skipped, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(os.path.join(dirpath, f) for f in filenames if _is_image(f))
    return sorted(found)


def _no_images(root: str | Path) -> ValueError:
    exts = ", ".join(IMAGE_EXTENSIONS[:2]) + ", ..."
    return ValueError(
        f"No images found under '{root}' (looked for {exts}): point data.path at a folder of images"
    )


def _check_dir(root: str | Path) -> None:
    if not Path(root).is_dir():
        raise FileNotFoundError(f"Image folder '{root}' does not exist: check data.path")


class UnlabeledImageFolder(ImageDataset):
    """Every image under root, recursively; label -1."""

    def __init__(self, root: str | Path, transform: Callable | None = None, **kw: Any) -> None:
        _check_dir(root)
        paths = find_images(root)
        if not paths:
            raise _no_images(root)
        super().__init__(paths, None, transform, **kw)
        self.root = str(root)


class LabeledImageFolder(ImageDataset):
    """torchvision-style ImageFolder: the class is the first-level subfolder (sorted names).

    Pass `class_to_idx` from the training set when building a validation set, so both share
    one label mapping even if a class folder is missing; images directly in root are ignored.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable | None = None,
        class_to_idx: dict[str, int] | None = None,
        **kw: Any,
    ) -> None:
        _check_dir(root)
        folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and e.name[0] != ".")
        if class_to_idx is None:
            class_to_idx = {name: i for i, name in enumerate(folders)}
        unknown = [f for f in folders if f not in class_to_idx]
        if unknown:
            raise ValueError(
                f"Class folders {unknown} under '{root}' are not in the training classes: "
                "give both splits the same class folders"
            )
        paths, labels = [], []
        for name in folders:
            files = find_images(Path(root) / name)
            paths += files
            labels += [class_to_idx[name]] * len(files)
        if not paths:
            raise _no_images(root)
        super().__init__(paths, labels, transform, **kw)
        self.root = str(root)
        self.class_to_idx = dict(class_to_idx)
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.__getitem__)


class ImageFileList(ImageDataset):
    """A .txt with one image path per line (relative to the list's folder); `#` comments."""

    def __init__(self, list_file: str | Path, transform: Callable | None = None, **kw: Any) -> None:
        list_file = Path(list_file)
        if not list_file.is_file():
            raise FileNotFoundError(f"Image list '{list_file}' does not exist: check data.path")
        base = list_file.resolve().parent
        paths = []
        for line in list_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                paths.append(str(base / Path(line).expanduser()))  # absolute lines stay absolute
        if not paths:
            raise ValueError(f"No image paths in list '{list_file}': write one image path per line")
        super().__init__(paths, None, transform, **kw)
        self.root = str(list_file)
