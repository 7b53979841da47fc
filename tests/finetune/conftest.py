"""Tiny labelled folders (two colour classes a model can tell apart), a tiny ViT and small
fine-tuning configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.config.finetune import load_finetune_config
from dinolab.config.schema import ModelConfig
from dinolab.models import build_backbone
from dinolab.models.preprocessing import Preprocessing, set_preprocessing
from tests.threads import one_thread  # noqa: F401 (autouse)

TINY_VIT = ModelConfig(
    arch="vit_tiny", patch_size=8, img_size=16, embed_dim=16, depth=2, num_heads=2,
    drop_path_rate=0.0,
)  # fmt: skip


def colour_images(root, n: int, colour: int, seed: int, size: int = 16) -> None:
    """n noisy images whose channel `colour` is bright: a class a linear head can learn."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        pixels[..., colour] += 120
        Image.fromarray(pixels).save(root / f"{i:03d}.png")


def make_folders(root, classes=("red", "green"), n_train=8, n_val=4):
    for c, name in enumerate(classes):
        colour_images(root / "train" / name, n_train, c % 3, seed=c)
        colour_images(root / "val" / name, n_val, c % 3, seed=100 + c)
    return root / "train", root / "val"


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = build_backbone(TINY_VIT).eval()
    pre = Preprocessing((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 16, 1.0)
    return set_preprocessing(backbone, pre)


def tiny_config(train, val, out_dir, *overrides: str):
    return load_finetune_config(
        overrides=[
            f"train_dir={train}", f"val_dir={val}", f"out_dir={out_dir}", "epochs=2",
            "batch_size=4", "num_workers=0", "progress=false", "tensorboard=false",
            "precision=fp32", "device=cpu", "warmup_epochs=0.5", "lr=0.01", "randaug_ops=1",
            *overrides,
        ]
    )  # fmt: skip


@pytest.fixture
def folders(tmp_path):
    return make_folders(tmp_path / "data")
