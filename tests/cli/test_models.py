"""`dinolab hub / extract / export` through dinolab.cli.main."""

import logging
import sys

import pytest
import torch
from safetensors.torch import load_file

from dinolab.cli import main
from dinolab.config.schema import ModelConfig
from dinolab.models import hub
from tests.train.conftest import make_images


@pytest.fixture
def weights(tmp_path):
    cfg = ModelConfig(arch="vit_small", patch_size=14, img_size=28, embed_dim=64, depth=1,
                      num_heads=1, drop_path_rate=0.0, layerscale_init=1e-5,
                      num_register_tokens=4)  # fmt: skip
    path = tmp_path / "m.pth"
    torch.save(hub.build_model(cfg, 0.0, True).state_dict(), path)
    return path


def test_hub_list_and_load(capsys, weights):
    assert main(["hub", "list"]) == 0
    out = capsys.readouterr().out
    assert "dinov2_vitg14_reg" in out and "dino_resnet50" in out
    assert main(["hub", "load", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "num_register_tokens  4" in out and '"antialias": true' in out
    assert main(["hub", "load", "dino_vits8", "--no-pretrained"]) == 0
    assert "pos_embed_grid       28x28" in capsys.readouterr().out


def test_extract_and_export(capsys, tmp_path, weights):
    imgs = make_images(tmp_path / "imgs", n=3)
    out = tmp_path / "f.safetensors"
    argv = ["extract", str(weights), str(imgs), "--out", str(out), "--image-size", "28"]
    assert main([*argv, "--patch-tokens", "--quiet"]) == 0
    assert load_file(out)["patch_tokens"].shape == (3, 2, 2, 64)
    assert "3 images (0 skipped)" in capsys.readouterr().out
    st = tmp_path / "b.safetensors"
    assert main(["export", str(weights), "--to", "safetensors", "--out", str(st)]) == 0
    assert torch.equal(hub.load(st).register_tokens, hub.load(weights).register_tokens)


def test_errors_are_one_line(capsys, tmp_path, weights):
    assert main(["hub", "load", "dinov3_vits16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dinolab: error: Unknown model 'dinov3_vits16'") and err.count("\n") == 1
    imgs = make_images(tmp_path / "imgs", n=1)
    argv = ["extract", str(weights), str(imgs), "--out", str(tmp_path / "f.npy")]
    assert main([*argv, "--image-size", "30"]) == 2
    assert "not a multiple of the patch size 14" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope.pth"), "--to", "timm", "--out", "x"]) == 2
    assert "No weights file" in capsys.readouterr().err


def test_onnx_export_without_onnxscript_names_the_extra(capsys, tmp_path, weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now fails
    out = tmp_path / "m.onnx"
    assert main(["export", str(weights), "--to", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dinolab: error: ONNX export needs onnxscript, which is not installed")
    assert "pip install 'dinolab[onnx]'" in err and err.count("\n") == 1 and not out.exists()


def test_onnx_export_output_stays_short(capsys, caplog, tmp_path, weights):
    """The exporter's own INFO lines (a pass, an initializer each: ~200 for a ViT-S) are off."""
    pytest.importorskip("onnxscript")
    out = tmp_path / "m.onnx"
    with caplog.at_level(logging.INFO):  # what `dinolab` shows (main logs at INFO)
        assert main(["export", str(weights), "--to", "onnx", "--out", str(out)]) == 0
    lines = [f"{r.name} {r.getMessage()}" for r in caplog.records]
    assert out.is_file() and all(line.startswith("dinolab ") for line in lines), lines
    assert len(lines) <= 3 and capsys.readouterr().out.count("\n") == 1
