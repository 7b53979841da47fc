"""Frozen features of images: CLS, pooled patch tokens, patch-token maps, last-n layers.

from dinolab.extract import extract, save_features
feats = extract("dinov2_vits14", "photos/", image_size=224, patch_tokens=True)
feats["cls"]            # [N, D]   final-normed CLS token
feats["pooled"]         # [N, D]   mean of the final-normed patch tokens
feats["patch_tokens"]   # [N, h, w, D] (patch_tokens=True)
feats["cls_layers"]     # [N, n, D] CLS of the last n blocks (last_n=n, ViTs)
feats["pooled_layers"]  # [N, n, D] pooled patch tokens of the last n blocks
feats["paths"]          # the image of each row (unreadable files are skipped and listed
                        # in feats["skipped"])

Images are prepared as the model expects (`dinolab.models.preprocessing`): a run's own
normalisation and evaluation size, the record in an export's metadata, ImageNet statistics at
224 px for published models; `image_size=`, `mean=`, `std=` override it. `save_features` writes
.safetensors, .npz, .npy, .csv (one row per image) or .pt (`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dinolab.data import EvalTransform, ImageDataset, build_dataset, collate_labeled
from dinolab.data.augment import IMAGENET_MEAN, IMAGENET_RESIZE_RATIO, IMAGENET_STD
from dinolab.hardware import autocast, resolve_precision
from dinolab.models.preprocessing import preprocessing_of

log = logging.getLogger("dinolab")
OUTPUT_SUFFIXES = (".npy", ".npz", ".safetensors", ".csv", ".pt")


def check_image_size(model: nn.Module, h: int, w: int) -> int:
    """The patch size; a ValueError when h x w is not a multiple of it."""
    patch = int(getattr(getattr(model, "backbone", model), "patch_size", 1) or 1)
    if h % patch or w % patch:
        near = max(round(h / patch), 1) * patch
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the patch size {patch}: use a multiple "
            f"of {patch} such as {near} (--image-size {near})."
        )
    return patch


def image_transform(
    size: int,
    crop: bool = True,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    resize_ratio: float = IMAGENET_RESIZE_RATIO,
):
    """Resize (shorter side to size * resize_ratio) + centre crop, or a plain resize to size^2."""
    if crop:
        return EvalTransform(size, resize_ratio, mean=mean, std=std)
    return T.Compose(
        [
            T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def _dataset(images: Any, transform) -> ImageDataset:
    if isinstance(images, (str, Path)):
        return build_dataset(str(images), "auto", transform=transform)
    if isinstance(images, Sequence) and images:
        return ImageDataset([str(p) for p in images], transform=transform)
    raise ValueError("images must be a folder, a .txt list, a list of paths or a tensor.")


@torch.no_grad()
def _features(model: nn.Module, x: torch.Tensor, patch_tokens: bool, last_n: int) -> dict:
    backbone = getattr(model, "backbone", model)
    out = backbone.forward_features(x)
    patch = out["x_norm_patchtokens"]
    feats = {"cls": out["x_norm_clstoken"], "pooled": patch.mean(dim=1)}
    if patch_tokens:
        p = int(backbone.patch_size)
        feats["patch_tokens"] = patch.reshape(x.shape[0], x.shape[2] // p, x.shape[3] // p, -1)
    if last_n:
        if not hasattr(backbone, "get_intermediate_layers"):
            raise ValueError(f"last_n needs a ViT; {type(backbone).__name__} has no layers API.")
        layers = backbone.get_intermediate_layers(x, last_n, return_class_token=True)
        feats["cls_layers"] = torch.stack([c for _, c in layers], dim=1)
        feats["pooled_layers"] = torch.stack([p.mean(dim=1) for p, _ in layers], dim=1)
    return feats


def extract(
    model: nn.Module | str | Path,
    images: Any,
    *,
    image_size: int | None = None,
    batch_size: int = 32,
    patch_tokens: bool = False,
    last_n: int = 0,
    crop: bool = True,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Named feature tensors (float32, CPU) of every readable image, in `paths` order.

    `model` is a module or anything `dinolab.hub.load` takes (hub name, weights file, run
    directory). `images` is a folder (recursive), a .txt list of paths, a list of paths or a
    normalised tensor [B, 3, H, W]. Images are resized to `image_size` (a multiple of the
    patch size) and centre-cropped unless `crop=False`; `image_size`, `mean` and `std` default
    to the model's own (`preprocessing_of(model)`).
    """
    if not isinstance(model, nn.Module):
        from dinolab.hub import load

        model = load(model, weights=weights)
    pre = preprocessing_of(model)
    image_size, mean, std = image_size or pre.image_size, mean or pre.mean, std or pre.std
    device = torch.device(device)
    precision, _ = resolve_precision(precision, device)
    model = model.to(device).eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    paths: list[str] = []
    skipped: list[str] = []

    def run(x: torch.Tensor) -> None:
        with autocast(device, precision):
            feats = _features(model, x.to(device), patch_tokens, last_n)
        for k, v in feats.items():
            chunks.setdefault(k, []).append(v.float().cpu())

    if isinstance(images, torch.Tensor):
        check_image_size(model, images.shape[-2], images.shape[-1])
        for start in tqdm(range(0, len(images), batch_size), disable=not progress, unit="batch"):
            run(images[start : start + batch_size])
        paths = [f"tensor[{i}]" for i in range(len(images))]
    else:
        check_image_size(model, image_size, image_size)
        transform = image_transform(image_size, crop, mean, std, pre.resize_ratio)
        dataset = _dataset(images, transform)
        loader = DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_labeled
        )
        for batch in tqdm(loader, desc="extract", unit="batch", disable=not progress):
            skipped.extend(batch["skipped"])
            if batch["num_images"]:
                run(batch["images"])
                paths.extend(dataset.paths[i] for i in batch["indices"].tolist())
        for err in skipped:
            log.warning("skipped unreadable image %s", err)
        if not paths:
            raise ValueError(f"No readable images in '{images}'.")
    result: dict[str, Any] = {k: torch.cat(v) for k, v in chunks.items()}
    result["paths"], result["skipped"] = paths, skipped
    return result


FORMATS = ("safetensors", "npz", "npy", "csv", "pt")


def feature_format(out: str | Path, fmt: str | None = None) -> str:
    """The format to write: `fmt`, else the suffix of `out` (one sentence when neither is)."""
    fmt = fmt or Path(out).suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"'{out}': unknown feature format '{fmt}'; use a suffix or --format among "
            f"{', '.join(FORMATS)}."
        )
    return fmt


def check_csv_features(patch_tokens: bool, last_n: int) -> None:
    """CSV holds one row per image: refuse per-patch / per-layer outputs before extracting."""
    if patch_tokens or last_n:
        raise ValueError(
            "CSV holds one row of numbers per image: --patch-tokens and --last-n need "
            "--format pt, npz or safetensors."
        )


def save_features(
    feats: dict[str, Any], out: str | Path, meta: dict | None = None, fmt: str | None = None
) -> list[Path]:
    """Write the tensors of `feats` to `out` as `fmt` (default: out's suffix); returns the files.

    safetensors / npz / pt hold every tensor and the paths (pt: a dict for
    `torch.load(weights_only=True)`, with `meta`); npy holds the CLS features, csv the CLS
    features as `path,cls_0,...` rows; the other tensors go to `<stem>.<name>.npy|csv` and
    (npy) the paths to `<stem>.paths.txt` beside it.
    """
    out = Path(out)
    fmt = feature_format(out, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in feats.items() if isinstance(v, torch.Tensor)}
    paths = list(feats.get("paths", []))
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (meta or {}).items()}
    if fmt == "safetensors":
        from dinolab.models.weights import save_safetensors

        save_safetensors(tensors, out, {"paths": json.dumps(paths), **meta})
        return [out]
    if fmt == "npz":
        np.savez(out, paths=np.array(paths), **{k: v.numpy() for k, v in tensors.items()})
        return [out]
    if fmt == "pt":
        torch.save({**tensors, "paths": paths, "meta": meta}, out)
        return [out]
    if fmt == "csv":
        check_csv_features(any(v.dim() > 2 for v in tensors.values()), 0)
        written = [out]
        _write_csv(out, "cls", tensors.pop("cls"), paths)
        for k, v in tensors.items():
            written.append(out.with_name(f"{out.stem}.{k}.csv"))
            _write_csv(written[-1], k, v, paths)
        return written
    written = [out]
    np.save(out, tensors.pop("cls").numpy())
    for k, v in tensors.items():
        written.append(out.with_name(f"{out.stem}.{k}.npy"))
        np.save(written[-1], v.numpy())
    written.append(out.with_name(f"{out.stem}.paths.txt"))
    written[-1].write_text("".join(p + "\n" for p in paths))
    return written


def _write_csv(path: Path, name: str, rows: torch.Tensor, paths: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", *(f"{name}_{i}" for i in range(rows.shape[1]))])
        for p, row in zip(paths, rows.tolist(), strict=True):
            writer.writerow([p, *(f"{x:.7g}" for x in row)])
