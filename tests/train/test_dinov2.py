"""DINOv2 end to end on tiny data: the loss goes down, resume is exact, presets resolve."""

import math

import pytest
import torch

from dinolab.config.loader import load_config
from dinolab.data import IBOTBatchMasks
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.monitor import read_metrics
from dinolab.train.pretrain import pretrain
from dinolab.train.schedules import build_schedules, peak_lr
from dinolab.train.trainer import Trainer
from tests.threads import one_thread  # noqa: F401 (autouse)

from .conftest import stop_after, tiny_config

V2 = {
    "model.patch_size": 4,  # 8 x 8 patches per global crop: room for iBOT blocks
    "model.layerscale_init": 0.1,
    "model.drop_path_uniform": True,
    "ibot.weight": 1.0,
    "ibot.head.out_dim": 48,
    "ibot.head.hidden_dim": 32,
    "ibot.head.bottleneck_dim": 16,
    "loss.koleo_weight": 0.1,
    "loss.centering": "sinkhorn",
    "optim.lr_scaling": "sqrt_1024",
    "optim.layer_decay": 0.9,
    "optim.patch_embed_lr_mult": 0.2,
}


def _v2(image_dir, out, **kw):
    return tiny_config(image_dir, out, **{**V2, **kw})


def test_dinov2_training_reduces_the_loss(image_dir, tmp_path):
    # Fixed teacher (momentum 1): the student must learn to match it on both objectives.
    cfg = _v2(
        image_dir,
        tmp_path / "run",
        **{"train.epochs": 6, "model.drop_path_rate": 0.0, "optim.base_lr": 0.02,
           "teacher.momentum": 1.0},
    )  # fmt: skip
    pretrain(cfg)
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 6 * 3
    for key in ("dino_loss", "ibot_loss", "koleo_loss", "masked_fraction"):
        assert all(math.isfinite(r[key]) for r in rows), key
    first = lambda k: sum(r[k] for r in rows[:3]) / 3  # noqa: E731
    last = lambda k: sum(r[k] for r in rows[-3:]) / 3  # noqa: E731
    assert last("loss") < first("loss") - 0.2
    assert last("dino_loss") < first("dino_loss")
    assert last("ibot_loss") < first("ibot_loss")
    assert 0.05 < sum(r["masked_fraction"] for r in rows) / len(rows) < 0.25  # about half x 0.3


def test_dinov2_resume_is_exact(image_dir, tmp_path):
    # Every DINOv2 part that draws random numbers or keeps state: masks, subset drop path,
    # packing, EMA centres of both losses, separate heads, lr multipliers.
    extra = {
        "loss.centering": "ema",
        "model.drop_path_rate": 0.4,
        "model.drop_path_impl": "subset",
        "model.pack_sequences": True,
        "train.epochs": 1,
    }
    straight = tmp_path / "straight"
    pretrain(_v2(image_dir, straight, **extra))
    split = tmp_path / "split"
    with stop_after(2), pytest.raises(TrainingInterrupted):
        pretrain(_v2(image_dir, split, **extra))
    Trainer(_v2(image_dir, split, **extra), resume=True).fit()
    a, b = (load_checkpoint(d / "checkpoint.pth")["model"] for d in (straight, split))
    assert a.keys() == b.keys()
    assert "ibot_loss.centering.center" in a and "student.head.ibot.last_layer.weight_v" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sqrt_lr_scaling_against_batch_1024():
    cfg = load_config(overrides=["optim.lr_scaling=sqrt_1024", "optim.base_lr=0.004"])
    assert peak_lr(cfg.optim, 256) == pytest.approx(0.002)
    assert peak_lr(cfg.optim, 1024) == pytest.approx(0.004)
    cfg.optim.warmup_epochs = 0
    assert build_schedules(cfg, 2, 4096)["lr"][0] == pytest.approx(0.008)
    cfg.optim.lr_scaling = "cubic"
    with pytest.raises(ValueError, match="optim.lr_scaling"):
        peak_lr(cfg.optim, 64)


def test_highres_phase_continues_the_run_and_resumes_exactly(image_dir, tmp_path):
    from dinolab.config.loader import load_saved_config
    from dinolab.train.pretrain import highres_trainer

    hr = {"train.epochs": 1, "highres.iterations": 2, "highres.global_size": 48,
          "highres.lr": 0.001, "model.drop_path_rate": 0.0}  # fmt: skip
    straight = tmp_path / "straight"
    summary = pretrain(_v2(image_dir, straight, **hr))
    assert summary["steps"] == 3 + 2
    rows = [r for r in read_metrics(straight / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["lr"] for r in rows[3:]] == [0.001, 0.001]
    # 48 px crops of 4 px patches: 12 x 12 grid masks, pos-embed interpolated from 8 x 8
    assert rows[3]["masked_fraction"] > 0
    assert load_saved_config(straight / "config.yaml").data.global_size == 32  # original kept

    split = tmp_path / "split"
    pretrain(_v2(image_dir, split, **{**hr, "highres.iterations": 0}))  # same main phase
    phase = highres_trainer(_v2(image_dir, split, **hr))
    phase.cfg.train.max_steps = 4  # killed after one high-resolution step
    phase.fit()
    pretrain(_v2(image_dir, split, **hr), resume=True)
    a, b = (load_checkpoint(d / "checkpoint.pth") for d in (straight, split))
    assert a["global_step"] == b["global_step"] == 5
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


@pytest.mark.parametrize(
    ("preset", "arch", "ffn", "batch"),
    [("dinov2_vitl14", "vit_large", "swiglu", 32), ("dinov2_vitg14", "vit_giant2", "swiglu", 12),
     ("dinov2_vits14", "vit_small", "mlp", 64)],
)  # fmt: skip
def test_published_presets_resolve_to_the_dinov2_recipe(preset, arch, ffn, batch):
    cfg = load_config(preset)
    m, o, loss, i = cfg.model, cfg.optim, cfg.loss, cfg.ibot
    assert (m.arch, m.ffn, m.patch_size, cfg.train.batch_size) == (arch, ffn, 14, batch)
    assert (m.layerscale_init, m.drop_path_rate, m.drop_path_uniform) == (1e-5, 0.4, True)
    assert (cfg.head.out_dim, cfg.head.bottleneck_dim, i.head.out_dim, i.head.bottleneck_dim) == (
        131072,
        384,
        131072,
        256,
    )
    assert i.weight == 1.0 and i.separate_head and i.mask_ratio == [0.1, 0.5]
    assert (i.head.norm_last_layer, i.head.freeze_last_layer_epochs) == (False, 1)
    assert (loss.centering, loss.koleo_weight) == ("sinkhorn", 0.1)
    assert (o.lr_scaling, o.base_lr, cfg.teacher.momentum, o.patch_embed_lr_mult) == (
        "sqrt_1024",
        2e-4,
        0.994,
        0.2,
    )
    assert (o.weight_decay_end, o.warmup_epochs) == (0.2, 80)
    assert (cfg.data.local_size, cfg.data.num_local_crops, cfg.data.global_scale) == (
        98,
        8,
        [0.32, 1.0],
    )
    assert cfg.highres.global_size == 518 and cfg.highres.global_size % 14 == 0


def test_cifar_preset_builds_and_gives_a_finite_loss(tmp_path):
    from dinolab.train.build import build_meta_arch

    cfg = load_config("dinov2_cifar10_vit_tiny", overrides=["train.precision=fp32"])
    model = build_meta_arch(cfg)
    batch = {"global_crops": torch.randn(4, 3, 32, 32), "local_crops": torch.randn(12, 3, 16, 16)}
    batch["masks"] = IBOTBatchMasks.from_config(cfg)(4, seeds=[11, 12])
    out = model.forward_loss(batch, teacher_temp=0.04)
    assert torch.isfinite(out["loss"]) and "ibot_loss" in out and "koleo_loss" in out


def test_dinov2_with_batched_augmentation(image_dir, tmp_path):
    # The iBOT masks ride with the batched views: a few real steps, every loss finite.
    pretrain(_v2(image_dir, tmp_path / "run", **{"data.augment_impl": "batched",
                                                 "train.max_steps": 2}))  # fmt: skip
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 2
    for key in ("dino_loss", "ibot_loss", "koleo_loss"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert any(r["masked_fraction"] > 0 for r in rows)
