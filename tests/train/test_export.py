import pytest
import torch

from dinolab.models.weights import load_backbone, save_backbone
from dinolab.run_dir import load_run_backbone
from dinolab.train.pretrain import pretrain

from .conftest import tiny_config


def test_export_round_trip_gives_the_same_features(tmp_path):
    from dinolab.models import build_backbone

    cfg = tiny_config(tmp_path, tmp_path / "run")
    backbone = build_backbone(cfg.model).eval()
    path = save_backbone(backbone, cfg, tmp_path / "b.safetensors")
    loaded = load_backbone(path)
    x = torch.randn(2, 3, 32, 48)  # non-square: position embeddings interpolate the same way
    assert torch.equal(backbone(x), loaded(x))


def test_run_without_export_falls_back_to_the_checkpoint(image_dir, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config(image_dir, run, **{"train.epochs": 1}))
    from_export, _ = load_run_backbone(run)
    (run / "teacher_backbone.safetensors").unlink()
    from_ckpt, cfg = load_run_backbone(run)
    assert cfg.model.depth == 2
    # a new run trains, saves and exports the official "+0.1" rule (model.interpolate_offset)
    assert cfg.model.interpolate_offset == 0.1
    assert from_export.interpolate_offset == from_ckpt.interpolate_offset == 0.1
    x = torch.randn(1, 3, 48, 24)  # not the native 4 x 4 grid, not square
    assert torch.equal(from_export(x), from_ckpt(x))


def test_run_without_teacher_is_a_clear_error(image_dir, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config(image_dir, run, **{"train.epochs": 1}))
    (run / "teacher_backbone.safetensors").unlink()
    (run / "checkpoint.pth").unlink()
    with pytest.raises(FileNotFoundError, match="has no teacher"):
        load_run_backbone(run)


def test_not_a_backbone_file(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"garbage that is not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_backbone(bad)
