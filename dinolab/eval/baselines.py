"""What a backbone must beat: raw pixels, and the same architecture at random init.

A pretraining run has learned something only when its features beat both; the demo and the
quality benchmark print them side by side, by weighted k-NN and by a logistic-regression probe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dinolab.config.schema import Config
from dinolab.data.augment import EvalTransform
from dinolab.data.datasets import LabeledImageFolder
from dinolab.eval.features import extract_features, same_class_folders
from dinolab.eval.knn import knn_classify
from dinolab.eval.logreg import logreg_holdout
from dinolab.models.build import build_backbone


def raw_pixel_features(root: str | Path, size: int = 32, resize_ratio: float = 1.0) -> dict:
    """Pixels at size x size, flattened, per-image mean-centred and L2-normalised.

    The view is the backbones' (`EvalTransform`: shorter side to size * resize_ratio, centre
    crop), so a baseline and a network compared side by side see the same part of each photo.
    """
    ds = LabeledImageFolder(root)
    resize, crop = EvalTransform(size, resize_ratio).transforms[:2]
    pixels = np.empty((len(ds), size * size * 3), dtype=np.float32)
    for i, path in enumerate(ds.paths):
        with Image.open(path) as img:
            view = crop(resize(img.convert("RGB")))
            pixels[i] = np.asarray(view, dtype=np.float32).reshape(-1)
    feats = torch.from_numpy(pixels)
    feats = torch.nn.functional.normalize(feats - feats.mean(dim=1, keepdim=True), dim=1)
    return {"features": feats, "labels": torch.tensor(ds.targets), "classes": ds.classes}


def random_init_backbone(cfg: Config) -> torch.nn.Module:
    """The run's architecture with fresh weights (seeded by `train.seed`)."""
    torch.manual_seed(cfg.train.seed)
    return build_backbone(cfg.model).eval()


def probe_scores(train: dict, test: dict, k: int, temperature: float = 0.07) -> dict:
    """Weighted k-NN top-1 / top-5 and the held-out logistic-regression top-1 of one feature set."""
    knn = knn_classify(
        train["features"],
        train["labels"],
        test["features"],
        test["labels"],
        ks=[k],
        temperature=temperature,
        num_classes=len(train["classes"]),
    )[k]
    linear = logreg_holdout(train, test)
    return {"knn_top1": knn["top1"], "knn_top5": knn["top5"], "linear_top1": linear["top1"]}


def backbone_scores(
    net: torch.nn.Module,
    train_root: str | Path,
    test_root: str | Path,
    k: int = 20,
    temperature: float = 0.07,
    **feature_kwargs,
) -> dict:
    """`probe_scores` of a backbone's features of two class folders (memory bank, queries)."""
    train = extract_features(net, train_root, **feature_kwargs)
    test = extract_features(net, test_root, **feature_kwargs)
    return probe_scores(train, test, k, temperature)


def compare_with_baselines(
    cfg: Config,
    backbone: torch.nn.Module,
    train_root: str | Path,
    val_root: str | Path,
    k: int = 20,
    **feature_kwargs,
) -> dict[str, dict]:
    """{"raw pixels": scores, "random init": scores, "trained": scores} on the same split, each
    seeing the same view of every photo (`eval.resize_ratio`)."""
    same_class_folders(train_root, val_root)
    kw = (
        dict(
            image_size=cfg.eval.image_size,
            resize_ratio=cfg.eval.resize_ratio,
            mean=tuple(cfg.data.mean),
            std=tuple(cfg.data.std),
            precision=cfg.train.precision,
        )
        | feature_kwargs
    )

    t = cfg.eval.temperature
    ratio = kw["resize_ratio"]
    pixels = (raw_pixel_features(train_root, 32, ratio), raw_pixel_features(val_root, 32, ratio))
    random_init = random_init_backbone(cfg)
    return {
        "raw pixels": probe_scores(*pixels, k, t),
        "random init": backbone_scores(random_init, train_root, val_root, k, t, **kw),
        "trained": backbone_scores(backbone, train_root, val_root, k, t, **kw),
    }
