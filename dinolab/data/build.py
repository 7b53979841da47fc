"""`build_dataset`: the dataset that `data.path` / `data.format` name, folder, list or shards.

The builder lives here, above the dataset classes it chooses between (`datasets`, `shards`),
so that neither of those imports the other back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from dinolab.data.datasets import (
    ImageDataset,
    ImageFileList,
    LabeledImageFolder,
    UnlabeledImageFolder,
    _is_image,
)
from dinolab.data.shards import TarShardDataset

log = logging.getLogger("dinolab.data.datasets")  # the logger these messages always had

FORMATS = ("auto", "folder", "imagefolder", "filelist", "shards")


def _all_in_subfolders(root: Path) -> bool:
    """True when root holds no image files directly (so every image is in a class folder)."""
    return not any(e.is_file() and _is_image(e.name) for e in os.scandir(root))


def _looks_like_shards(path: str) -> bool:
    """A .tar file, a `{000..099}` shard pattern, or a folder of .tar files and no images."""
    p = Path(path)
    if p.suffix == ".tar" or ("{" in path and ".." in path):
        return True
    if not p.is_dir():
        return False
    names = [e.name for e in os.scandir(p) if e.is_file()]
    return any(n.endswith(".tar") for n in names) and not any(_is_image(n) for n in names)


def build_dataset(
    path: str,
    format: str = "auto",
    transform: Callable | None = None,
    labeled: bool = False,
    cache_decoded: bool = False,
) -> ImageDataset:
    """The dataset for `data.path` / `data.format` (auto: .txt -> list, class folders -> labels,
    .tar / folder of .tar / `{000..099}` pattern -> tar shards)."""
    if format not in FORMATS:
        raise ValueError(f"Unknown data.format '{format}': use one of {', '.join(FORMATS)}")
    if format == "shards" or (format == "auto" and _looks_like_shards(path)):
        return TarShardDataset(path, transform=transform, cache_decoded=cache_decoded)
    p = Path(path)
    if not p.exists():
        kind = "Image list" if p.suffix.lower() == ".txt" else "Image folder"
        raise FileNotFoundError(f"{kind} '{path}' does not exist: check data.path")
    if format == "auto":
        if p.is_file():
            if p.suffix.lower() != ".txt":
                raise ValueError(
                    f"'{path}' is a file, not a folder or a .txt list: point data.path at a "
                    "folder of images or a .txt file with one image path per line"
                )
            format = "filelist"
        elif labeled and _all_in_subfolders(p):
            format = "imagefolder"
        else:
            if labeled:
                log.warning("'%s' has images outside class folders: loading it unlabelled", path)
            format = "folder"
    kw = {"transform": transform, "cache_decoded": cache_decoded}
    if format == "filelist":
        return ImageFileList(p, **kw)
    if format == "imagefolder":
        return LabeledImageFolder(p, **kw)
    return UnlabeledImageFolder(p, **kw)


def require_readable(dataset: ImageDataset, path: str) -> None:
    """Refuse, in one sentence, a dataset of which no file decodes, before a run starts.

    Files are read in order until one decodes (one read for a healthy folder), so a folder of
    only broken files is refused up front instead of "training" on nothing.
    """
    first_error = None
    for index in range(len(dataset)):
        loaded = dataset._load(index)
        if not isinstance(loaded, str):
            return
        first_error = first_error or loaded
    raise ValueError(
        f"None of the {len(dataset)} files of data.path '{path}' is a readable image (first: "
        f"{first_error}): point data.path at a folder of images that open."
    )
