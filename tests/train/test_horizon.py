"""train.max_steps drives the schedules, the progress bar's total and the resume hint."""

import logging

import numpy as np
import pytest

from dinolab.train.budget import BudgetPlan
from dinolab.train.horizon import finished_hint, planned_steps, run_schedules
from dinolab.train.monitor import read_metrics
from dinolab.train.pretrain import pretrain
from dinolab.train.schedules import build_schedules

from .conftest import tiny_config


def test_max_steps_shortens_the_horizon_and_the_schedules_follow_it(image_dir, tmp_path):
    over = {"train.epochs": 100, "optim.warmup_epochs": 10, "optim.min_lr": 1e-5}
    cfg = tiny_config(image_dir, tmp_path, **over)
    assert planned_steps(cfg, 3) == 300
    for key, values in run_schedules(cfg, 3, 8).items():  # no max_steps: DINO's schedules
        np.testing.assert_array_equal(values, build_schedules(cfg, 3, 8)[key])
    cfg.train.max_steps = 40
    assert planned_steps(cfg, 3) == 40
    s = run_schedules(cfg, 3, 8)
    assert {len(v) for v in s.values()} == {40}
    assert int(np.argmax(s["lr"])) == 3  # warm-up keeps its share: 10 of 100 epochs = 4 steps
    assert s["lr"][-1] == pytest.approx(1e-5, rel=0.05)  # the cosine ends at min_lr
    assert s["momentum"][-1] == pytest.approx(cfg.teacher.momentum_end, abs=1e-4)
    assert s["wd"][-1] == pytest.approx(cfg.optim.weight_decay_end, rel=0.01)
    cfg.train.max_steps = 1000  # past the epochs: the epochs end the run
    assert planned_steps(cfg, 3) == 300


def test_a_time_budget_never_plans_past_max_steps():
    plan = BudgetPlan(budget_s=100.0)
    assert plan.replan(step=3, seconds_per_step=1.0, max_steps=20) and plan.horizon == 20
    assert BudgetPlan(budget_s=10.0).replan(3, 1.0, max_steps=20)  # the budget is shorter
    short = BudgetPlan(budget_s=10.0)
    short.replan(3, 1.0, max_steps=20)
    assert short.horizon == 13


def test_a_max_steps_run_ends_its_lr_at_min_lr_and_its_bar_counts_max_steps(
    image_dir, tmp_path, capsys, caplog
):
    run = tmp_path / "run"
    over = {"train.epochs": 10, "train.max_steps": 5, "train.progress": True}
    over |= {"optim.min_lr": 1e-4, "train.log_every_steps": 1}
    summary = pretrain(tiny_config(image_dir, run, **over))
    assert summary["steps"] == 5
    lrs = [r["lr"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert len(lrs) == 5 and lrs[-1] < 2e-4  # planned over 5 steps, not cut off at 5 of 30
    frames = capsys.readouterr().err.split("\r")
    assert any(" 1/5 " in f for f in frames) and any(" 5/5 " in f for f in frames)
    with caplog.at_level(logging.INFO, logger="dinolab"):
        pretrain(tiny_config(image_dir, run, **over), resume=True)
    assert "raise train.max_steps to train longer" in caplog.text


def test_the_finished_hint_names_the_setting_that_ended_the_run(image_dir, tmp_path):
    cfg = tiny_config(image_dir, tmp_path, **{"train.epochs": 2})
    assert "raise train.epochs" in finished_hint(cfg, 2, 6, 3)
    cfg.train.max_steps = 4
    assert "step 4 of train.max_steps=4; raise train.max_steps" in finished_hint(cfg, 1, 4, 3)
    cfg.train.time_budget = "5min"
    assert "raise train.time_budget" in finished_hint(cfg, 1, 4, 3)
