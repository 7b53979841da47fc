"""Global image descriptors for instance retrieval and copy detection, batched and cached.

Two image preparations, as DINO's scripts do them:
- `long_side`: the image (or its query box) resized so its long side is `imsize`, aspect kept
  (eval_image_retrieval.py; DINO's `thumbnail` only shrinks, this also enlarges small images);
- `square`: resized to imsize x imsize (eval_copy_detection.py).
The net sees the image with the right / bottom remainder cut to a multiple of the patch size:
the same pixels DINO's strided patch convolution reads. Descriptors: `cls` (final-normed CLS
token) or `cls+gem` (CLS concatenated with GeM, p = 4, of the final-normed patch tokens),
optionally averaged over scales {1, 1/sqrt 2, 1/2} (bilinear), as in DINO's `multi_scale`.
Images of one shape are batched together, so mixed sizes stay exact (no padding).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dinolab.data.augment import IMAGENET_MEAN, IMAGENET_STD
from dinolab.data.datasets import ImageDataset
from dinolab.eval.cache import (
    FeatureWriter,
    backbone_fingerprint,
    cache_key,
    files_fingerprint,
    load_entry,
)
from dinolab.hardware import autocast, resolve_precision

log = logging.getLogger("dinolab")
Box = tuple[float, float, float, float]
SCALES = (1.0, 1 / math.sqrt(2), 0.5)
KINDS = ("cls", "cls+gem")


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Aspect kept, long side = size (Lanczos, as Pillow's thumbnail in DINO's script)."""
    w, h = img.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if new == (w, h) else img.resize(new, Image.LANCZOS)


def gem(tokens: Tensor, p: float = 4.0, eps: float = 1e-6) -> Tensor:
    """Generalised mean over tokens [B, N, D] -> [B, D]: (mean clamp(x, eps)^p)^(1/p)."""
    return tokens.clamp(min=eps).pow(p).mean(dim=1).pow(1.0 / p)


def fit_to_patch(x: Tensor, patch: int) -> Tensor:
    """Cut the right / bottom remainder so H and W are multiples of the patch (at least one)."""
    h, w = x.shape[-2:]
    if h < patch or w < patch:  # DINO's conv would fail: enlarge to one patch first
        size = (max(h, patch), max(w, patch))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        h, w = size
    return x[..., : h - h % patch, : w - w % patch]


class _Prepared(ImageDataset):
    """Decoded image -> optional box crop -> resize -> normalised tensor."""

    def __init__(self, paths, boxes, imsize, square, mean, std) -> None:
        super().__init__(paths)
        self.boxes, self.imsize, self.square = boxes, imsize, square
        self.mean, self.std = list(mean), list(std)
        self.transform = self._prepare

    def _decode(self, index: int) -> Image.Image:
        img = super()._decode(index)
        box = self.boxes[index] if self.boxes is not None else None
        return img.crop(box) if box is not None else img  # Pillow rounds the box, as revisitop

    def _prepare(self, img: Image.Image) -> Tensor:
        if self.square:
            img = img.resize((self.imsize, self.imsize), Image.BICUBIC)
        else:
            img = resize_long_side(img, self.imsize)
        return TF.normalize(TF.to_tensor(img), self.mean, self.std)


def _first(batch: list) -> dict:
    return batch[0]


def _forward(backbone: nn.Module, x: Tensor, kind: str, patch: int) -> Tensor:
    x = fit_to_patch(x, patch)
    if not hasattr(backbone, "forward_features"):
        if kind != "cls":
            raise ValueError(f"{type(backbone).__name__} gives no patch tokens for GeM.")
        return backbone(x).float()
    out = backbone.forward_features(x)
    cls = out["x_norm_clstoken"].float()
    if kind == "cls":
        return cls
    return torch.cat([cls, gem(out["x_norm_patchtokens"].float())], dim=1)


def _describe(backbone: nn.Module, x: Tensor, kind: str, patch: int, multiscale: bool) -> Tensor:
    if not multiscale:
        return _forward(backbone, x, kind, patch)
    total = 0
    for s in SCALES:
        inp = x
        if s != 1:
            inp = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        total = total + _forward(backbone, inp, kind, patch)
    return total / len(SCALES)


@torch.no_grad()
def image_descriptors(
    backbone: nn.Module,
    paths: Sequence[str],
    imsize: int,
    *,
    kind: str = "cls",
    square: bool = False,
    multiscale: bool = False,
    boxes: Sequence[Box | None] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    desc: str = "descriptors",
) -> Tensor:
    """[len(paths), D] float32 descriptors, not normalised, in `paths` order (see above).

    With `cache_dir` they are stored there and reused while the weights, the files and every
    setting above are unchanged. An unreadable image is an error: ground truth names it.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown descriptor '{kind}': use one of {', '.join(KINDS)}.")
    if not paths:
        raise ValueError(f"No images to describe for {desc}.")
    device = torch.device(device)
    precision, _ = resolve_precision(precision, device)
    patch = int(getattr(backbone, "patch_size", 1) or 1)
    key = ""
    if cache_dir is not None:
        settings = [imsize, kind, square, multiscale, list(mean), list(std), precision]
        key = cache_key(
            {
                "backbone": backbone_fingerprint(backbone),
                "files": files_fingerprint(list(paths), [0] * len(paths)),
                "boxes": None if boxes is None else [list(b) if b else None for b in boxes],
                "descriptor": settings,
            }
        )
        entry = load_entry(cache_dir, key)
        if entry is not None:
            log.info("%s from cache %s", desc, Path(cache_dir) / key)
            return _in_order(entry)
    dataset = _Prepared(list(paths), boxes, imsize, square, mean, std)
    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=_first)
    writer = FeatureWriter(len(paths), cache_dir, key)
    pending: dict[tuple, list[dict]] = {}
    was_training = backbone.training
    backbone.to(device).eval()

    def flush(shape: tuple) -> None:
        items = pending.pop(shape)
        x = torch.stack([it["image"] for it in items]).to(device)
        with autocast(device, precision):
            feats = _describe(backbone, x, kind, patch, multiscale)
        writer.append(feats.float().cpu(), torch.tensor([it["index"] for it in items]))

    try:
        for item in tqdm(loader, desc=desc, unit="img", disable=not progress):
            if "error" in item:
                raise ValueError(f"Cannot read image {item['error']}: fix or remove it.")
            shape = tuple(item["image"].shape)
            pending.setdefault(shape, []).append(item)
            if len(pending[shape]) >= batch_size:
                flush(shape)
        for shape in list(pending):
            flush(shape)
        entry = writer.finish({"desc": desc, "n": len(paths)})
    except BaseException:
        writer.abort()
        raise
    finally:
        backbone.train(was_training)
    return _in_order(entry)


def _in_order(entry: dict) -> Tensor:
    """Rows come batched by shape; the stored labels are their indices in `paths`."""
    order = torch.argsort(entry["labels"])
    return entry["features"][order]  # indexing copies: the cache file stays untouched


def raw_pixel_descriptors(
    paths: Sequence[str], size: int = 32, boxes: Sequence[Box | None] | None = None
) -> Tensor:
    """The pixel baseline: (boxed) image at size x size, flattened, mean-centred."""
    out = np.empty((len(paths), size * size * 3), dtype=np.float32)
    dataset = _Prepared(list(paths), boxes, size, True, [0.0] * 3, [1.0] * 3)
    for i in range(len(paths)):
        item = dataset[i]
        if "error" in item:
            raise ValueError(f"Cannot read image {item['error']}: fix or remove it.")
        out[i] = item["image"].permute(1, 2, 0).reshape(-1).numpy()
    feats = torch.from_numpy(out)
    return feats - feats.mean(dim=1, keepdim=True)
