"""Gram anchoring in training: refresh schedule, weight schedule, high-res teacher, resume."""

import pytest
import torch

from dinolab.config.gram import GramConfig
from dinolab.data import IBOTBatchMasks
from dinolab.models import build_backbone
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.gram_anchor import GramAnchor
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.pretrain import pretrain
from dinolab.train.schedules import build_schedules
from dinolab.train.step import TrainStep
from dinolab.train.trainer import Trainer

from .conftest import stop_after, tiny_config

GRAM = {"gram.weight": 1.0, "gram.start_iteration": 2, "gram.refresh_every": 2}


def _vit(tmp_path):
    cfg = tiny_config(tmp_path / "none", tmp_path / "run")
    torch.manual_seed(0)
    return build_backbone(cfg.model)


def test_gram_teacher_is_taken_at_the_start_then_refreshed_up_to_the_maximum(tmp_path):
    teacher = _vit(tmp_path)
    cfg = GramConfig(weight=2.0, start_iteration=5, refresh_every=4, max_refreshes=2)
    anchor = GramAnchor(cfg, teacher)
    assert [it for it in range(30) if anchor.refresh_due(it)] == [5, 9, 13]
    unlimited = GramAnchor(GramConfig(weight=1.0, start_iteration=0, refresh_every=10), teacher)
    assert [it for it in range(35) if unlimited.refresh_due(it)] == [0, 10, 20, 30]
    never = GramAnchor(GramConfig(weight=1.0, start_iteration=3), teacher)
    assert [it for it in range(30) if never.refresh_due(it)] == [3]

    copies = []
    for it in range(15):
        with torch.no_grad():
            for p in teacher.parameters():
                p.add_(1.0)  # the EMA teacher moves every step
        anchor.step(it, teacher)
        if all(
            torch.equal(a, b)
            for a, b in zip(anchor.backbone.parameters(), teacher.parameters(), strict=True)
        ):
            copies.append(it)
    assert copies == [5, 9, 13]
    assert not any(p.requires_grad for p in anchor.backbone.parameters())


def test_gram_weight_is_zero_before_the_start_then_warms_up_and_stays(tmp_path):
    cfg = GramConfig(weight=2.0, weight_start=0.5, weight_warmup_iterations=3, start_iteration=4)
    anchor = GramAnchor(cfg, _vit(tmp_path))
    assert [anchor.weight_at(i) for i in range(9)] == [0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_gram_needs_patch_features():
    with pytest.raises(ValueError, match="needs patch features"):
        GramAnchor(GramConfig(weight=1.0), torch.nn.Linear(2, 2))


def test_highres_gram_teacher_features_come_back_on_the_student_grid(tmp_path):
    vit = _vit(tmp_path)  # patch 8
    crops = torch.randn(3, 3, 32, 32)
    same = GramAnchor(GramConfig(weight=1.0), vit)
    assert torch.equal(
        same.patch_targets(crops, 8), vit.forward_features(crops)["x_norm_patchtokens"]
    )
    seen = []
    high = GramAnchor(GramConfig(weight=1.0, highres_factor=2.0), vit)
    high.backbone.patch_embed.register_forward_pre_hook(
        lambda m, args: seen.append(tuple(args[0].shape))
    )
    out = high.patch_targets(crops, 8)
    assert seen == [(3, 3, 64, 64)] and out.shape == (3, 16, 32)


def test_gram_loss_trains_the_student_from_its_start_iteration(tmp_path):
    cfg = tiny_config(tmp_path / "none", tmp_path / "run", **GRAM, **{"model.patch_size": 4})
    step = TrainStep(cfg, torch.device("cpu"), "fp32")
    step.schedules = build_schedules(cfg, iters_per_epoch=4, total_batch=8)
    g = torch.Generator().manual_seed(1)
    batch = {"global_crops": torch.randn(16, 3, 32, 32, generator=g)}
    rows = [step(batch, it=it, epoch=0) for it in range(3)]
    assert [r["gram_weight"] for r in rows] == [0.0, 0.0, 1.0]
    assert "gram_loss" not in rows[1] and rows[2]["gram_loss"].item() > 0
    assert all(p.grad is None for p in step.model.gram_anchor.backbone.parameters())
    assert IBOTBatchMasks.from_config(cfg) is None  # iBOT stays off: Gram alone


def test_gram_anchoring_uses_a_resnet_feature_map_as_its_patches(tmp_path):
    kw = {**GRAM, "gram.start_iteration": 0, "model.arch": "small_resnet", "model.depth": 1}
    cfg = tiny_config(tmp_path / "none", tmp_path / "run", **kw)
    step = TrainStep(cfg, torch.device("cpu"), "fp32")
    step.schedules = build_schedules(cfg, iters_per_epoch=4, total_batch=8)
    batch = {"global_crops": torch.randn(16, 3, 32, 32)}
    first, second = step(batch, it=0, epoch=0), step(batch, it=1, epoch=0)
    # step 0: student, teacher and Gram teacher are one network (no drop path, no masks)
    assert first["gram_weight"] == 1.0 and first["gram_loss"].item() == 0.0
    assert second["gram_loss"].item() > 0  # the student has moved, the Gram teacher has not


def test_gram_teacher_is_restored_by_resume(image_dir, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    pretrain(tiny_config(image_dir, straight, **GRAM))  # 2 epochs x 3 steps: copies at 2, 4
    with stop_after(3), pytest.raises(TrainingInterrupted):
        pretrain(tiny_config(image_dir, split, **GRAM))
    Trainer(tiny_config(image_dir, split, **GRAM), resume=True).fit()
    a = load_checkpoint(straight / "checkpoint.pth")["model"]
    b = load_checkpoint(split / "checkpoint.pth")["model"]
    assert any(k.startswith("gram_anchor.backbone.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
