"""Schedules: DINO's cosine with warm-up, the teacher temperature ramp, the run builder."""

import math

import numpy as np
import pytest

from dinolab.config.schema import Config
from dinolab.train.schedules import build_schedules, cosine_schedule, teacher_temp_schedule


def test_cosine_with_warmup_start_peak_middle_end():
    # 5 epochs x 4 iterations, 1 warm-up epoch: 4 warm-up iterations then 16 cosine ones.
    s = cosine_schedule(1.0, 0.0, epochs=5, iters_per_epoch=4, warmup_epochs=1,
                        start_warmup_value=0.1)  # fmt: skip
    assert len(s) == 20
    assert s[:4] == pytest.approx([0.1, 0.4, 0.7, 1.0])  # linspace(0.1, 1.0, 4)
    assert s[4] == pytest.approx(1.0)  # cosine starts at the peak
    assert s[4 + 8] == pytest.approx(0.5)  # half-way: 0.5 * (1 + cos(pi / 2))
    assert s[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))  # DINO never hits 0
    assert np.all(np.diff(s[4:]) < 0)


def test_cosine_without_warmup_goes_from_base_towards_final():
    s = cosine_schedule(0.04, 0.4, epochs=2, iters_per_epoch=3)
    assert len(s) == 6
    assert s[0] == pytest.approx(0.04)
    assert s[3] == pytest.approx(0.04 + 0.36 * 0.5)  # 0.4 + 0.5*(0.04-0.4)*(1+cos(pi/2))
    assert s[-1] == pytest.approx(0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * 5 / 6)))


def test_warmup_longer_than_run_is_cut():
    s = cosine_schedule(1.0, 0.0, epochs=1, iters_per_epoch=4, warmup_epochs=2)
    assert s.tolist() == pytest.approx([0.0, 1 / 7, 2 / 7, 3 / 7])  # linspace(0, 1, 8)[:4]


def test_teacher_temperature_ramp_then_constant():
    s = teacher_temp_schedule(0.04, 0.07, warmup_epochs=2, epochs=4, iters_per_epoch=3)
    assert len(s) == 12
    assert s[0] == pytest.approx(0.04)
    assert s[1] == pytest.approx(0.04 + 0.03 / 5)  # 6 warm-up points: step 0.03 / 5
    assert s[5] == pytest.approx(0.07)
    assert s[6:].tolist() == pytest.approx([0.07] * 6)


def test_teacher_temperature_warmup_beyond_run_is_clipped():
    s = teacher_temp_schedule(0.04, 0.07, warmup_epochs=30, epochs=2, iters_per_epoch=1)
    assert s.tolist() == pytest.approx([0.04, 0.04 + 0.03 / 29])


def test_build_schedules_from_config():
    cfg = Config()
    cfg.train.epochs, cfg.optim.warmup_epochs, cfg.teacher.temp_warmup_epochs = 10, 2, 3
    s = build_schedules(cfg, iters_per_epoch=5, total_batch=512)
    assert set(s) == {"lr", "wd", "momentum", "teacher_temp"}
    assert all(len(v) == 50 for v in s.values())
    peak = 0.0005 * 512 / 256
    assert s["lr"][0] == 0.0 and s["lr"][10] == pytest.approx(peak)
    assert s["lr"].max() == pytest.approx(peak)
    assert 1e-6 < s["lr"][-1] < 1e-6 + 0.01 * peak
    assert s["wd"][0] == pytest.approx(0.04) and 0.39 < s["wd"][-1] <= 0.4
    assert s["momentum"][0] == pytest.approx(0.996) and 0.9999 < s["momentum"][-1] <= 1.0
    assert s["teacher_temp"][0] == pytest.approx(0.04) and s["teacher_temp"][15] == 0.07


def test_empty_epoch_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller than one batch"):
        build_schedules(Config(), iters_per_epoch=0, total_batch=64)


def test_constant_schedule_start_peak_hold_and_cooldown():
    from dinolab.train.schedules import constant_schedule

    s = constant_schedule(0.0, 1.0, 0.2, total=20, warmup_iters=4, cooldown_iters=6)
    assert s[:4] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])  # start -> peak
    assert np.all(s[4:14] == 1.0)  # the constant phase
    assert s[14] == pytest.approx(1.0) and s[17] == pytest.approx(0.6)  # cosine, half-way
    assert s[-1] == pytest.approx(0.2 + 0.4 * (1 + math.cos(math.pi * 5 / 6)))
    held = constant_schedule(0.0, 1.0, 0.2, total=20, warmup_iters=4)
    assert np.all(held[4:] == 1.0)  # no cool-down: the peak to the end
    assert len(constant_schedule(0.0, 1.0, 0.2, total=3, warmup_iters=4, cooldown_iters=6)) == 3


def _constant(epochs: int, cooldown: float = 0.0) -> dict:
    cfg = Config()
    cfg.schedule.kind, cfg.schedule.cooldown_epochs = "constant", cooldown
    cfg.train.epochs, cfg.optim.warmup_epochs, cfg.teacher.temp_warmup_epochs = epochs, 2, 3
    return build_schedules(cfg, iters_per_epoch=5, total_batch=512)


def test_constant_schedules_values_at_start_middle_and_end():
    s, peak = _constant(10), 0.0005 * 512 / 256
    start, middle, end = 0, 25, 49
    assert [s["lr"][i] for i in (start, middle, end)] == pytest.approx([0.0, peak, peak])
    assert [s["wd"][i] for i in (start, middle, end)] == pytest.approx([0.04] * 3)
    assert [s["momentum"][i] for i in (start, middle, end)] == pytest.approx([0.996] * 3)
    assert [s["teacher_temp"][i] for i in (start, middle, end)] == pytest.approx([0.04, 0.07, 0.07])
    cooled = _constant(10, cooldown=2)  # the last 10 steps: cosine from the peak to the end
    assert cooled["lr"][middle] == pytest.approx(peak) and cooled["lr"][39] == pytest.approx(peak)
    assert 1e-6 < cooled["lr"][end] < 1e-6 + 0.03 * peak
    assert 0.39 < cooled["wd"][end] <= 0.4 and 0.9999 < cooled["momentum"][end] <= 1.0


def test_constant_schedules_do_not_depend_on_the_run_length():
    short, longer = _constant(10), _constant(20)  # a run continued "as long as useful"
    for key in short:
        assert np.array_equal(short[key], longer[key][:50]), key
    with pytest.raises(ValueError, match="schedule.kind must be one of cosine, constant"):
        cfg = Config()
        cfg.schedule.kind = "linear"
        build_schedules(cfg, iters_per_epoch=5, total_batch=64)
