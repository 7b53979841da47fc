"""`curate embed`: L2-normalised embeddings of every image of a folder or list, chunk by chunk.

Rows go straight into memmaps (`store`); after each chunk the memmaps are flushed and
`progress.json` records how many files are done, so a killed run restarts at the next chunk.
A file that does not decode is skipped and counted (its row stays invalid), never a crash.
The same model and preprocessing as `dinolab extract` / `eval` (`backbone_tokens`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.format import open_memmap
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from dinolab.curate.grid import GRID_CELLS, GRID_LAYERS, grid_descriptor
from dinolab.curate.store import (
    EMBEDDINGS,
    FILES,
    HASHES,
    PROGRESS,
    REPORT,
    VALID,
    read_json,
    write_json,
)
from dinolab.data import ImageDataset, collate_labeled
from dinolab.data.augment import IMAGENET_RESIZE_RATIO
from dinolab.data.build import build_dataset
from dinolab.eval.cache import backbone_fingerprint
from dinolab.eval.descriptors import gem
from dinolab.eval.features import backbone_tokens
from dinolab.extract import check_image_size, image_transform
from dinolab.hardware import autocast, resolve_precision

log = logging.getLogger("dinolab")


def image_paths(images: str | Path | Sequence[str]) -> list[str]:
    """Absolute paths of a folder (recursive), a .txt list, or a list of paths."""
    if isinstance(images, (str, Path)):
        paths = build_dataset(str(images), "auto").paths
    else:
        paths = [str(p) for p in images]
    return [str(Path(p).resolve()) for p in paths]


DESCRIPTORS = ("cls", "cls+gem", "grid")


def describe(
    model: nn.Module,
    images: torch.Tensor,
    descriptor: str = "cls",
    layers: Sequence[int] = GRID_LAYERS,
    cells: int = GRID_CELLS,
) -> torch.Tensor:
    """CLS rows, or CLS + GeM (p = 4) of the patch tokens: more instance-specific, as DINO's
    copy detection uses them; or `grid` (`curate.grid`): early layers' maps pooled over a
    grid, flip-averaged, for near-copy dedup."""
    if descriptor == "cls":
        return backbone_tokens(model, images)
    if descriptor == "grid":
        return grid_descriptor(model, images, layers, cells)
    if not hasattr(model, "forward_features"):
        raise ValueError(f"{type(model).__name__} gives no patch tokens: use --descriptor cls.")
    out = model.forward_features(images)
    patches = out["x_norm_patchtokens"].float()
    return torch.cat([out["x_norm_clstoken"].float(), gem(patches)], dim=1)


def file_hash(path: str) -> bytes:
    """SHA-1 of the file's bytes (20 zero bytes when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).digest()
    except OSError:
        return bytes(20)


def _open_store(out: Path, paths: list[str], settings: dict, dim: int) -> dict:
    """The progress of a matching store in `out`, or a new empty store."""
    if (out / PROGRESS).is_file():
        progress = read_json(out / PROGRESS)
        same_files = (out / FILES).read_text().splitlines() == paths
        if progress["settings"] != settings or not same_files:
            raise ValueError(
                f"'{out}' holds embeddings of another model, preprocessing or file list: give "
                "a new --out folder, or delete that one to start again."
            )
        return progress
    out.mkdir(parents=True, exist_ok=True)
    (out / FILES).write_text("".join(p + "\n" for p in paths))
    open_memmap(out / EMBEDDINGS, "w+", np.float32, (len(paths), dim)).flush()
    open_memmap(out / VALID, "w+", np.bool_, (len(paths),)).flush()
    open_memmap(out / HASHES, "w+", "S20", (len(paths),)).flush()
    progress = {"settings": settings, "count": len(paths), "dim": dim, "done": 0, "bad": []}
    write_json(out / PROGRESS, progress)
    return progress


@torch.no_grad()
def embed_images(
    model: nn.Module,
    images: str | Path | Sequence[str],
    out_dir: str | Path,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop: bool = True,
    resize_ratio: float = IMAGENET_RESIZE_RATIO,
    batch_size: int = 64,
    chunk_size: int = 4096,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
    descriptor: str = "cls",
    layers: Sequence[int] = GRID_LAYERS,
    cells: int = GRID_CELLS,
) -> dict:
    """Embed every image into the store `out_dir` (resuming a matching one); the report.
    `layers` / `cells`: the `grid` descriptor's (ignored by the others)."""
    start_time = time.perf_counter()
    if descriptor not in DESCRIPTORS:
        raise ValueError(f"Unknown descriptor '{descriptor}': use {' or '.join(DESCRIPTORS)}.")
    out = Path(out_dir)
    paths = image_paths(images)
    device = torch.device(device)
    precision, _ = resolve_precision(precision, device)
    check_image_size(model, image_size, image_size)
    model = model.to(device).eval()
    settings = {
        "model": backbone_fingerprint(model),
        "image_size": image_size,
        "mean": list(mean),
        "std": list(std),
        "crop": crop,
        "resize_ratio": resize_ratio,
        "precision": precision,
        "descriptor": descriptor,
    }
    if descriptor == "grid":  # only here: stores of the other descriptors keep resuming
        settings.update(layers=[int(i) for i in layers], cells=int(cells))
    probe = torch.zeros(1, 3, image_size, image_size, device=device)
    with autocast(device, precision):
        dim = describe(model, probe, descriptor, layers, cells).shape[1]
    state = _open_store(out, paths, settings, dim)
    resumed_at = state["done"]
    if resumed_at:
        log.info("resuming %s at file %d of %d", out, resumed_at, len(paths))
    emb = np.load(out / EMBEDDINGS, mmap_mode="r+")
    valid = np.load(out / VALID, mmap_mode="r+")
    hashes = np.load(out / HASHES, mmap_mode="r+")
    dataset = ImageDataset(
        paths, transform=image_transform(image_size, crop, mean, std, resize_ratio)
    )
    bar = tqdm(total=len(paths), initial=resumed_at, desc="embed", unit="img", disable=not progress)
    for lo in range(resumed_at, len(paths), chunk_size):
        hi = min(lo + chunk_size, len(paths))
        loader = DataLoader(
            Subset(dataset, range(lo, hi)),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=collate_labeled,
        )
        bad: list[str] = []
        for batch in loader:
            bad += batch["skipped"]
            if batch["num_images"]:
                with autocast(device, precision):
                    feats = describe(model, batch["images"].to(device), descriptor, layers, cells)
                rows = batch["indices"].numpy()
                emb[rows] = F.normalize(feats.float(), dim=1).cpu().numpy()
                valid[rows] = True
            bar.update(batch["num_images"] + len(batch["skipped"]))
        hashes[lo:hi] = [file_hash(p) for p in paths[lo:hi]]
        for m in (emb, valid, hashes):
            m.flush()
        state["done"], state["bad"] = hi, state["bad"] + bad
        write_json(out / PROGRESS, state)  # after the flush: done rows are on disk
    bar.close()
    for err in state["bad"][:20]:
        log.warning("skipped unreadable image %s", err)
    seconds = time.perf_counter() - start_time
    report = {
        "files": len(paths),
        "embedded": int(np.count_nonzero(valid)),
        "bad_files": len(state["bad"]),
        "bad_examples": state["bad"][:100],
        "dim": dim,
        "resumed_at": resumed_at,
        "seconds": round(seconds, 2),
        "images_per_s": round((len(paths) - resumed_at) / max(seconds, 1e-9), 1),
        **settings,
    }
    write_json(out / REPORT, report)
    return report
