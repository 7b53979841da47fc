"""TrainStep: one optimizer step of a tiny DINOv2 run (clipping units, last-layer freeze)."""

import pytest
import torch

from dinolab.data import IBOTBatchMasks
from dinolab.train.optim import clip_units
from dinolab.train.schedules import build_schedules
from dinolab.train.step import TrainStep

from .conftest import tiny_config

V2 = {
    "model.patch_size": 4,
    "ibot.weight": 1.0,
    "ibot.head.out_dim": 48,
    "ibot.head.hidden_dim": 32,
    "ibot.head.bottleneck_dim": 16,
    "loss.centering": "sinkhorn",
    "loss.koleo_weight": 0.1,
    "train.batch_size": 4,
}


def _step(tmp_path, **kw) -> TrainStep:
    cfg = tiny_config(tmp_path / "none", tmp_path / "run", **{**V2, **kw})
    torch.manual_seed(0)
    step = TrainStep(cfg, torch.device("cpu"), "fp32")
    step.schedules = build_schedules(cfg, iters_per_epoch=4, total_batch=4)
    return step


def _batch(step: TrainStep) -> dict:
    g = torch.Generator().manual_seed(1)
    batch = {
        "global_crops": torch.randn(8, 3, 32, 32, generator=g),
        "local_crops": torch.randn(8, 3, 16, 16, generator=g),
    }
    batch["masks"] = IBOTBatchMasks.from_config(step.cfg)(8, seeds=list(range(4)))
    return batch


def test_dinov2_clips_backbone_dino_head_and_ibot_head_each_as_one(tmp_path):
    step = _step(tmp_path, **{"optim.clip_mode": "per_module_norm", "optim.clip_grad": 0.01})
    s = step.model.student
    assert clip_units(s) == [s.backbone, s.head["dino"], s.head["ibot"]]
    seen = {}
    real = step.optimizer.step

    def spy():  # the gradients AdamW receives: each unit's norm is the clip limit
        seen.update({i: torch.stack([p.grad.norm() for p in u.parameters() if p.grad is not None])
                     .norm().item() for i, u in enumerate(clip_units(s))})  # fmt: skip
        real()

    step.optimizer.step = spy
    metrics = step(_batch(step), it=0, epoch=1)
    assert metrics["grad_norm"].item() > 0.03  # far above the limit before clipping
    assert all(abs(v - 0.01) < 1e-5 for v in seen.values()), seen


def test_unknown_clip_mode_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=r"optim.clip_mode='global' is unknown; use one of"):
        _step(tmp_path, **{"optim.clip_mode": "global"})


def _last_layers(step: TrainStep) -> list[torch.nn.Parameter]:
    named = step.model.student.named_parameters()
    return [p for n, p in named if "last_layer" in n and p.requires_grad]


def test_dinov2_freezes_the_last_layer_by_a_zero_lr_and_adamw_keeps_accumulating(tmp_path):
    step = _step(tmp_path)
    last = _last_layers(step)
    assert len(last) >= 2  # the DINO and the iBOT heads' prototypes
    before = [p.detach().clone() for p in last]
    batch = _batch(step)
    step(batch, it=0, epoch=0)
    state = [step.optimizer.state[p] for p in last]
    assert all(s and int(s["step"]) == 1 and s["exp_avg_sq"].abs().sum() > 0 for s in state)
    moment = [s["exp_avg_sq"].clone() for s in state]
    step(batch, it=1, epoch=0)  # still frozen: weights unchanged, moments grow
    assert all(torch.equal(p, b) for p, b in zip(last, before, strict=True))
    assert all(int(s["step"]) == 2 for s in state)
    assert all(not torch.equal(s["exp_avg_sq"], m) for s, m in zip(state, moment, strict=True))
    frozen = [g for g in step.optimizer.param_groups if "freeze_epochs" in g]
    assert frozen and all(g["lr"] == 0.0 for g in frozen)
    assert any(g["lr"] > 0 for g in step.optimizer.param_groups if "freeze_epochs" not in g)
    step(batch, it=4, epoch=1)  # freeze over: the lr is the schedule's, the prototypes move
    assert all(g["lr"] > 0 for g in frozen)
    assert not all(torch.equal(p, b) for p, b in zip(last, before, strict=True))


def test_dino_v1_drops_the_last_layer_gradients_instead(tmp_path):
    cfg = tiny_config(tmp_path / "none", tmp_path / "run", **{"train.batch_size": 4})
    step = TrainStep(cfg, torch.device("cpu"), "fp32")
    step.schedules = build_schedules(cfg, iters_per_epoch=4, total_batch=4)
    g = torch.Generator().manual_seed(1)
    batch = {"global_crops": torch.randn(8, 3, 32, 32, generator=g),
             "local_crops": torch.randn(8, 3, 16, 16, generator=g)}  # fmt: skip
    step(batch, it=0, epoch=0)
    assert not step.freeze_by_lr
    assert all(not step.optimizer.state[p] for p in _last_layers(step))  # AdamW never saw them
    assert not any("freeze_epochs" in g for g in step.optimizer.param_groups)
