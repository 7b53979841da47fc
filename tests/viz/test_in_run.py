"""Attention pictures written by a pretraining run every `viz.every_epochs` epochs."""

import pytest
from PIL import Image

from dinolab.train.trainer import Trainer

from ..train.conftest import make_images, tiny_config


def test_tiny_run_writes_pictures(tmp_path):
    data = make_images(tmp_path / "images", n=8)  # one step per epoch
    cfg = tiny_config(data, tmp_path / "run", **{"viz.every_epochs": 1, "viz.num_images": 2})
    Trainer(cfg).fit()
    pictures = sorted((tmp_path / "run" / "viz").glob("*.png"))
    assert [p.name for p in pictures] == ["attention_epoch0001.png", "attention_epoch0002.png"]
    with Image.open(pictures[-1]) as im:
        assert im.format == "PNG"


def test_wrong_image_path_fails_at_start(tmp_path):
    data = make_images(tmp_path / "images", n=8)
    cfg = tiny_config(data, tmp_path / "run", **{"viz.every_epochs": 1})
    cfg.viz.images = [str(tmp_path / "missing.jpg")]
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        Trainer(cfg)
