"""`dinolab viz attention | pca | match | video`: every command writes pictures that open."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.cli import main
from dinolab.config.schema import Config, ModelConfig
from dinolab.models import build_backbone
from dinolab.models.weights import save_backbone
from tests.train.conftest import make_images


@pytest.fixture
def model(tmp_path):
    cfg = Config(model=ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=32,
                                   depth=2, num_heads=2, num_register_tokens=1))  # fmt: skip
    return str(save_backbone(build_backbone(cfg.model), cfg, tmp_path / "m.safetensors"))


@pytest.fixture
def images(tmp_path):
    return sorted(str(p) for p in make_images(tmp_path / "imgs", n=3, size=36).iterdir())


def opens_as_png(path) -> bool:
    with Image.open(path) as im:
        return im.format == "PNG" and im.width > 0


def test_attention_with_masks(model, images, tmp_path, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    for p in images:
        gt = np.zeros((36, 36), np.uint8)
        gt[8:24, 8:24] = 255
        Image.fromarray(gt).save(masks / (p.rsplit("/", 1)[1]))
    out = tmp_path / "a" / "att.png"
    argv = ["viz", "attention", model, *images, "--size", "32", "--out", str(out)]
    assert main([*argv, "--masks", str(masks), "--device", "cpu"]) == 0
    assert opens_as_png(out)
    report = json.loads(out.with_suffix(".jaccard.json").read_text())
    assert report["keep"] == 0.6 and len(report["images"]) == 3
    assert all(0 <= j <= 1 for s in report["images"] for j in s["heads"])
    assert "mean-map J" in capsys.readouterr().out


def test_pca_match_video(model, images, tmp_path, capsys):
    pca, match, gif = tmp_path / "p.png", tmp_path / "m.png", tmp_path / "v.gif"
    assert main(["viz", "pca", model, *images, "--size", "32", "--out", str(pca)]) == 0
    assert main(["viz", "match", model, *images[:2], "--size", "32", "--out", str(match)]) == 0
    frames = str(tmp_path / "imgs")
    assert main(["viz", "video", model, frames, "--size", "32", "--out", str(gif)]) == 0
    assert opens_as_png(pca) and opens_as_png(match)
    assert opens_as_png(tmp_path / "v_gif_preview.png")
    with Image.open(gif) as im:
        assert im.n_frames == 3
    assert "mutual nearest-neighbour patch pairs" in capsys.readouterr().out


def test_hub_model_with_registers(images, tmp_path):
    out = tmp_path / "hub.png"
    argv = ["viz", "attention", "dinov2_vits14_reg", images[0], "--no-pretrained"]
    assert main([*argv, "--size", "28", "--out", str(out)]) == 0
    assert opens_as_png(out)


def test_user_errors_are_one_line(model, images, tmp_path, capsys):
    assert main(["viz", "match", model, *images, "--out", str(tmp_path / "m.png")]) == 2
    assert "exactly two images, got 3" in capsys.readouterr().err
    assert main(["viz", "pca", model, str(tmp_path / "nope.jpg")]) == 2
    assert "No image file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["viz", "attention", model, images[0], "--masks", str(empty)]
    assert main([*argv, "--out", str(tmp_path / "a.png")]) == 2
    assert "has no mask for" in capsys.readouterr().err


def test_resnet_hub_model_is_refused(images, tmp_path, capsys):
    argv = ["viz", "pca", "dino_resnet50", images[0], "--no-pretrained"]
    assert main([*argv, "--out", str(tmp_path / "p.png")]) == 2
    assert "not a ViT" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_pictures_in_every_precision(model, images, tmp_path, precision):
    """bf16 covers the forward only: PCA, matching and the maps stay float32."""
    for cmd, imgs in (("pca", images), ("match", images[:2]), ("attention", images[:1])):
        argv = ["viz", cmd, model, *imgs, "--size", "32", "--out", str(tmp_path / f"{cmd}.png")]
        assert main([*argv, "--precision", precision, "--quiet"]) == 0
        assert opens_as_png(tmp_path / f"{cmd}.png")


def test_a_file_that_is_not_an_image_is_one_sentence(model, tmp_path, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    out = tmp_path / "att.png"
    assert main(["viz", "attention", model, str(fake), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dinolab: error: '{fake}' is not an image Pillow can read"), err
    assert "\n" not in err and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_without_one_is_one_sentence(model, images, tmp_path, capsys):
    argv = ["viz", "attention", model, images[0], "--out", str(tmp_path / "a.png")]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "device 'cuda' asks for a GPU, but PyTorch sees no CUDA GPU" in err and "\n" not in err
