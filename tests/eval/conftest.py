"""Tiny labelled folders, a tiny random ViT and a run directory holding it as its teacher."""

from __future__ import annotations

import pytest
import torch

from dinolab.config.loader import load_config, save_config
from dinolab.config.schema import ModelConfig
from dinolab.models import build_backbone
from dinolab.run_dir import export_teacher
from tests.threads import one_thread  # noqa: F401 (autouse)
from tests.train.conftest import make_images

TINY_MODEL = {"arch": "vit_tiny", "patch_size": 8, "img_size": 32, "embed_dim": 32, "depth": 2,
              "num_heads": 2}  # fmt: skip


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(ModelConfig(**TINY_MODEL, drop_path_rate=0.0)).eval()


@pytest.fixture
def backbone() -> torch.nn.Module:
    return tiny_vit()


@pytest.fixture
def folders(tmp_path):
    """train/ and val/ with classes a, b: 6 + 3 images each, 32 px."""
    root = tmp_path / "data"
    for c, name in enumerate("ab"):
        make_images(root / "train" / name, n=6, seed=c)
        make_images(root / "val" / name, n=3, seed=10 + c)
    return root


@pytest.fixture
def run_dir(tmp_path, backbone):
    """A run directory with only config.yaml and teacher_backbone.safetensors."""
    run = tmp_path / "run"
    run.mkdir()
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", f"out_dir={run}"])
    save_config(cfg, run / "config.yaml")
    export_teacher(backbone, cfg, run)
    return run
