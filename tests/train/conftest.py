"""A tiny synthetic image folder and a tiny config, shared by the trainer tests."""

import contextlib
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from dinolab import distributed as dist
from dinolab.config.loader import load_config
from dinolab.train.trainer import Trainer


def make_images(root, n=24, size=32, seed=0):
    """Coloured rectangles on noisy backgrounds: structure a network can learn a little."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = (rng.random((size, size, 3)) * 60).astype(np.uint8)
        colour = rng.integers(80, 256, 3)
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 4, size // 2, 2)
        img[y0 : y0 + h, x0 : x0 + w] = colour
        Image.fromarray(img).save(root / f"img_{i:03d}.png")
    return root


@pytest.fixture
def image_dir(tmp_path):
    return make_images(tmp_path / "images")


def tiny_overrides(data_path, out_dir, **overrides) -> list[str]:
    """A 2-block ViT run on 32 px crops as `key=value` strings (for the CLI and torchrun)."""
    base = {
        "model.arch": "vit_tiny",
        "model.patch_size": 8,
        "model.img_size": 32,
        "model.embed_dim": 32,
        "model.depth": 2,
        "model.num_heads": 2,
        "model.drop_path_rate": 0.1,
        "head.out_dim": 64,
        "head.hidden_dim": 64,
        "head.bottleneck_dim": 16,
        "data.global_size": 32,
        "data.local_size": 16,
        "data.num_local_crops": 2,
        "data.num_workers": 0,
        "data.path": str(data_path),
        "train.batch_size": 8,
        "train.epochs": 2,
        "train.precision": "fp32",
        "train.threads": 1,
        "train.progress": False,
        "train.tensorboard": False,
        "train.log_every_steps": 1,
        "train.keep_checkpoints": 0,
        "optim.warmup_epochs": 0,
        "optim.base_lr": 0.002,
        "teacher.temp_warmup_epochs": 0,
        "out_dir": str(out_dir),
    }
    base.update(overrides)
    return [f"{k}={v}" for k, v in base.items()]


def tiny_config(data_path, out_dir, **overrides):
    return load_config(overrides=tiny_overrides(data_path, out_dir, **overrides))


@contextlib.contextmanager
def stop_after(steps: int, only_rank: int | None = None):
    """Every Trainer run inside stops after `steps` optimizer steps as on SIGTERM: it saves,
    then raises TrainingInterrupted. Unlike train.max_steps this leaves the run's horizon, and
    so its schedules, as they are: the way to cut a run that must resume to the same weights.
    `only_rank`: only that rank gets the "signal" (the others must agree to stop with it)."""
    real = Trainer._step

    def step(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if self.global_step + 1 == steps and only_rank in (None, dist.get_rank()):
            self.stop.request()
        return out

    with mock.patch.object(Trainer, "_step", step):
        yield
