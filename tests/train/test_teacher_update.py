"""train.teacher_update: each rule checked by parameter equality after k steps, and resume."""

import pytest
import torch

from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.pretrain import pretrain
from dinolab.train.schedules import build_schedules
from dinolab.train.step import TrainStep
from dinolab.train.trainer import Trainer

from .conftest import stop_after, tiny_config

ITERS_PER_EPOCH = 2


def _step(tmp_path, rule: str | None) -> TrainStep:
    kw = {"model.drop_path_rate": 0.0}
    if rule is not None:
        kw["train.teacher_update"] = rule
    cfg = tiny_config(tmp_path / "none", tmp_path / "run", **kw)
    torch.manual_seed(0)
    step = TrainStep(cfg, torch.device("cpu"), "fp32")
    step.schedules = build_schedules(cfg, ITERS_PER_EPOCH, total_batch=8)
    return step


def _batch(it: int) -> dict:
    g = torch.Generator().manual_seed(it)
    return {
        "global_crops": torch.randn(16, 3, 32, 32, generator=g),
        "local_crops": torch.randn(16, 3, 16, 16, generator=g),
    }


def _params(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _run(step: TrainStep, k: int, record=None) -> None:
    """k steps; `record(it, student_before)` sees the student's weights before each step."""
    for it in range(k):
        before = _params(step.model._student_params)
        step(_batch(it), it=it, epoch=it // ITERS_PER_EPOCH)
        if record is not None:
            record(it, before)


def test_ema_is_the_default_and_the_momentum_update(tmp_path):
    default, ema = _step(tmp_path, None), _step(tmp_path, "ema")
    assert default.cfg.train.teacher_update == "ema"
    for it in range(3):
        teacher = _params(ema.model._teacher_params)
        default(_batch(it), it=it, epoch=0)
        ema(_batch(it), it=it, epoch=0)
        m = ema.values(it)["momentum"]
        expected = [
            t.lerp(s, 1.0 - m) for t, s in zip(teacher, ema.model._student_params, strict=True)
        ]
        assert _equal(ema.model._teacher_params, expected)
        assert not _equal(ema.model._teacher_params, ema.model._student_params)
    assert _equal(default.model._teacher_params, ema.model._teacher_params)


def test_student_copy_teacher_is_the_current_student(tmp_path):
    step = _step(tmp_path, "student_copy")
    _run(step, 3)
    assert _equal(step.model._teacher_params, step.model._student_params)
    assert all(p.grad is None for p in step.model.teacher.parameters())


def test_prev_iter_teacher_is_the_student_before_the_last_update(tmp_path):
    step = _step(tmp_path, "prev_iter")
    seen = []

    def check(it, before):
        assert _equal(step.model._teacher_params, before), it
        assert not _equal(step.model._teacher_params, step.model._student_params)
        seen.append(it)

    _run(step, 3, check)
    assert seen == [0, 1, 2]


def test_prev_epoch_teacher_is_the_student_frozen_at_the_epoch_start(tmp_path):
    step = _step(tmp_path, "prev_epoch")
    initial = _params(step.model._student_params)
    starts = {}

    def check(it, before):
        epoch = it // ITERS_PER_EPOCH
        starts.setdefault(epoch, before)
        assert _equal(step.model._teacher_params, starts[epoch]), it

    _run(step, 5, check)  # epochs 0, 1 and the first step of 2
    assert _equal(starts[0], initial) and not _equal(starts[1], initial)
    assert step.teacher_update.state_dict() == {"rule": "prev_epoch", "snapshot_epoch": 2}


def test_unknown_teacher_update_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="train.teacher_update='momentum' is unknown"):
        _step(tmp_path, "momentum")


@pytest.mark.parametrize("rule", ["prev_epoch", "prev_iter"])
def test_teacher_snapshots_are_restored_by_resume(image_dir, tmp_path, rule):
    kw = {"train.teacher_update": rule}
    straight, split = tmp_path / "straight", tmp_path / "split"
    pretrain(tiny_config(image_dir, straight, **kw))  # 2 epochs x 3 steps
    with stop_after(4), pytest.raises(TrainingInterrupted):  # mid-epoch 2
        pretrain(tiny_config(image_dir, split, **kw))
    saved = load_checkpoint(split / "checkpoint.pth")
    assert saved["teacher_update"] == {
        "rule": rule,
        "snapshot_epoch": 1 if rule == "prev_epoch" else -1,
    }
    Trainer(tiny_config(image_dir, split, **kw), resume=True).fit()
    a = load_checkpoint(straight / "checkpoint.pth")["model"]
    b = load_checkpoint(split / "checkpoint.pth")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
