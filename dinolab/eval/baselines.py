"""What a backbone must beat: k-NN on raw pixels, and the same architecture at random init.

A pretraining run has learned something only when its features beat both; the demo and the
quality benchmark print them side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dinolab.config.schema import Config
from dinolab.data.datasets import LabeledImageFolder
from dinolab.eval.features import extract_features, same_class_folders
from dinolab.eval.knn import knn_classify
from dinolab.models.build import build_backbone


def raw_pixel_features(root: str | Path, size: int = 32) -> dict:
    """Pixels at size x size, flattened, per-image mean-centred and L2-normalised."""
    ds = LabeledImageFolder(root)
    pixels = np.empty((len(ds), size * size * 3), dtype=np.float32)
    for i, path in enumerate(ds.paths):
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            pixels[i] = np.asarray(img, dtype=np.float32).reshape(-1)
    feats = torch.from_numpy(pixels)
    feats = torch.nn.functional.normalize(feats - feats.mean(dim=1, keepdim=True), dim=1)
    return {"features": feats, "labels": torch.tensor(ds.targets), "classes": ds.classes}


def random_init_backbone(cfg: Config) -> torch.nn.Module:
    """The run's architecture with fresh weights (seeded by `train.seed`)."""
    torch.manual_seed(cfg.train.seed)
    return build_backbone(cfg.model).eval()


def knn_baselines(
    cfg: Config, train_root: str | Path, val_root: str | Path, k: int = 20, **feature_kwargs
) -> dict[str, dict]:
    """{"raw pixels": {"top1", "top5"}, "random init": {...}} for weighted k-NN at `k`."""
    classes = same_class_folders(train_root, val_root)

    def score(train: dict, val: dict) -> dict:
        s = knn_classify(
            train["features"],
            train["labels"],
            val["features"],
            val["labels"],
            ks=[k],
            temperature=cfg.eval.temperature,
            num_classes=len(classes),
        )
        return s[k]

    pixels = score(raw_pixel_features(train_root), raw_pixel_features(val_root))
    backbone = random_init_backbone(cfg)
    kw = (
        dict(
            image_size=cfg.eval.image_size or cfg.data.global_size,
            mean=tuple(cfg.data.mean),
            std=tuple(cfg.data.std),
            precision=cfg.train.precision,
        )
        | feature_kwargs
    )
    random = score(
        extract_features(backbone, train_root, **kw), extract_features(backbone, val_root, **kw)
    )
    return {"raw pixels": pixels, "random init": random}
