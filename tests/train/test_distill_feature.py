"""Feature distillation: a frozen random ViT (a weights file, no heads) teaches a student."""

import pytest
import torch

from dinolab.config.loader import load_config
from dinolab.models import build_backbone
from dinolab.models.weights import load_backbone, save_backbone
from dinolab.run_dir import load_run_backbone, read_metrics
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.distill_run import distill

from .conftest import make_images, tiny_overrides

FEATURE = {
    "model.arch": "small_resnet",  # another family than the teacher, another patch grid
    "model.embed_dim": 32,
    "model.depth": 1,
    "distill.global_weight": 1.0,
    "distill.patch_weight": 1.0,
    "data.num_local_crops": 0,
    "train.epochs": 4,
    "optim.base_lr": 0.02,
}


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A random 2-block ViT/16 (2 x 2 patches at 32 px) saved as a dinolab weights file."""
    tmp = tmp_path_factory.mktemp("feature")
    cfg = load_config(overrides=tiny_overrides(tmp, tmp, **{"model.patch_size": 16}))
    torch.manual_seed(7)
    backbone = build_backbone(cfg.model).eval()
    return save_backbone(backbone, cfg, tmp / "random_vit.safetensors"), backbone


def test_a_frozen_random_teacher_lowers_the_feature_loss(teacher_file, tmp_path):
    path, backbone = teacher_file
    data = make_images(tmp_path / "images")
    run = tmp_path / "run"
    overrides = tiny_overrides(data, run, **FEATURE, **{"distill.teacher": str(path)})
    summary = distill(load_config(overrides=overrides))
    cfg_text = (run / "config.yaml").read_text()
    assert "mode: feature" in cfg_text and "koleo_weight: 0.0" in cfg_text
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 12 and {"global_loss", "patch_loss"} <= rows[0].keys()
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < 0.8 * first, (first, last)

    state = load_checkpoint(run / "checkpoint.pth")["model"]
    assert {k.split(".")[0] for k in state} == {"student", "teacher"}
    assert state["student.head.cls.weight"].shape == (32, 32)  # student 32 -> teacher width 32
    reread = load_backbone(path).state_dict()  # the teacher file is untouched by training
    assert all(torch.equal(reread[k], v) for k, v in backbone.state_dict().items())
    exported, cfg = load_run_backbone(run)
    assert cfg.model.arch == "small_resnet" and summary["steps"] == 12
    assert torch.equal(
        exported.state_dict()["stem.0.weight"], state["teacher.backbone.stem.0.weight"]
    )
    means = [v for k, v in exported.state_dict().items() if k.endswith("running_mean")]
    assert means and all(v.abs().sum() > 0 for v in means)  # BN statistics followed the student
