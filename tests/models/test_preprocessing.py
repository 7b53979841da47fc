"""The normalisation and image size travel with the weights: files, run dirs, hub, extract."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

import dinolab.hub
from dinolab.cli import main
from dinolab.config.loader import load_config, save_config
from dinolab.exporters import export
from dinolab.extract import extract
from dinolab.models.preprocessing import Preprocessing, preprocessing_of
from dinolab.models.weights import load_backbone, save_backbone
from dinolab.run_dir import export_teacher, load_run_backbone
from tests.eval.conftest import TINY_MODEL, tiny_vit
from tests.train.conftest import make_images

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]


@pytest.fixture
def cifar_run(tmp_path):
    """A run with CIFAR statistics at 32 px: nothing like ImageNet's 224 px."""
    run = tmp_path / "run"
    run.mkdir()
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(
        overrides=[
            *overrides,
            "data.global_size=32",
            f"data.mean={CIFAR_MEAN}",
            f"data.std={CIFAR_STD}",
            f"out_dir={run}",
        ]
    )
    save_config(cfg, run / "config.yaml")
    export_teacher(tiny_vit(), cfg, run)
    return run


RUN_PRE = Preprocessing(tuple(CIFAR_MEAN), tuple(CIFAR_STD), 32)


def test_the_teacher_file_records_the_runs_preprocessing(cifar_run):
    with safe_open(str(cifar_run / "teacher_backbone.safetensors"), "pt") as f:
        record = json.loads(f.metadata()["preprocessing"])
    assert record == {"mean": CIFAR_MEAN, "std": CIFAR_STD, "image_size": 32,
                      "resize_ratio": pytest.approx(256 / 224)}  # fmt: skip
    assert preprocessing_of(load_backbone(cifar_run / "teacher_backbone.safetensors")) == RUN_PRE
    assert preprocessing_of(load_run_backbone(cifar_run)[0]) == RUN_PRE


def test_a_copied_file_keeps_it_without_its_run(cifar_run, tmp_path):
    alone = tmp_path / "elsewhere" / "teacher.safetensors"
    alone.parent.mkdir()
    shutil.copy(cifar_run / "teacher_backbone.safetensors", alone)
    assert preprocessing_of(dinolab.hub.load(alone)) == RUN_PRE
    assert preprocessing_of(dinolab.hub.load(cifar_run)) == RUN_PRE
    resaved = export(dinolab.hub.load(alone), "safetensors", tmp_path / "again.safetensors")
    assert preprocessing_of(load_backbone(resaved)) == RUN_PRE  # `dinolab export` keeps it


def test_published_models_and_old_files_get_imagenet_at_224(tmp_path):
    assert preprocessing_of(dinolab.hub.load("dino_vits16", pretrained=False)) == Preprocessing()
    old = tmp_path / "old.safetensors"  # written before the record existed
    save_backbone(tiny_vit(), _tiny_model_cfg(), old)
    from safetensors.torch import load_file, save_file

    with safe_open(str(old), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "preprocessing"}
    save_file(load_file(str(old)), str(old), metadata=meta)
    assert preprocessing_of(load_backbone(old)) == Preprocessing(image_size=224)


def _tiny_model_cfg():
    from dinolab.config.schema import ModelConfig

    return ModelConfig(**TINY_MODEL, drop_path_rate=0.0)


def test_extract_uses_the_models_own_preprocessing(cifar_run, tmp_path):
    images = make_images(tmp_path / "images", n=3, size=40)
    model = dinolab.hub.load(cifar_run)
    own = extract(model, images, progress=False)
    explicit = extract(tiny_vit(), images, image_size=32, mean=CIFAR_MEAN, std=CIFAR_STD,
                       progress=False)  # fmt: skip
    assert torch.allclose(own["cls"], explicit["cls"], atol=1e-6)
    imagenet = extract(tiny_vit(), images, progress=False)  # no record: ImageNet at 224
    assert not torch.allclose(own["cls"], imagenet["cls"], atol=1e-3)


def test_cli_extract_of_a_lone_export_uses_its_record(cifar_run, tmp_path, capsys):
    alone = tmp_path / "teacher.safetensors"
    shutil.copy(cifar_run / "teacher_backbone.safetensors", alone)
    images = make_images(tmp_path / "images", n=3, size=40)
    out = tmp_path / "feats.pt"
    assert main(["extract", str(alone), str(images), "--out", str(out), "--quiet"]) == 0
    feats = torch.load(out, weights_only=True)
    assert feats["meta"]["image_size"] == "32" and json.loads(feats["meta"]["mean"]) == CIFAR_MEAN
    ref = extract(tiny_vit(), images, image_size=32, mean=CIFAR_MEAN, std=CIFAR_STD,
                  progress=False)  # fmt: skip
    assert torch.allclose(feats["cls"], ref["cls"], atol=1e-6)
    csv = tmp_path / "feats.txt"
    assert main(["extract", str(alone), str(images), "--out", str(csv), "--format", "csv",
                 "--quiet"]) == 0  # fmt: skip
    assert csv.read_text().splitlines()[0].startswith("path,cls_0,cls_1")
    capsys.readouterr()
    assert main(["extract", str(alone), str(images), "--out", str(tmp_path / "p.csv"),
                 "--patch-tokens"]) == 2  # fmt: skip
    assert "CSV holds one row of numbers per image" in capsys.readouterr().err


def test_a_whole_frame_run_records_its_view(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", "eval.resize_ratio=1.0"])
    export_teacher(tiny_vit(), cfg, run)
    assert preprocessing_of(load_backbone(run / "teacher_backbone.safetensors")).resize_ratio == 1.0
    assert load_config("cpu_fast").eval.resize_ratio == 1.0  # the CPU recipe keeps the frame
