"""train.time_budget: durations, the horizon plan, stretched schedules, a budgeted run, resume."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dinolab.train import budget as budget_mod
from dinolab.train.budget import BudgetPlan, RunBudget, budget_schedules, parse_duration
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.pretrain import pretrain

from .conftest import stop_after, tiny_config


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30min", 1800), ("2h", 7200), ("1h30min", 5400), ("1.5h", 5400), ("5m", 300)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "ten minutes", "5min junk", "0s"])
def test_bad_duration_is_one_sentence(text):
    with pytest.raises(ValueError, match="train.time_budget="):
        parse_duration(text)


def test_replan_sets_the_horizon_from_the_time_left():
    plan = BudgetPlan(budget_s=100.0, used_s=10.0)
    assert plan.replan(step=5, seconds_per_step=2.0)
    assert plan.horizon == 5 + 45
    plan.used_s = 12.0
    assert not plan.replan(step=6, seconds_per_step=2.0)  # on plan: keep it
    assert plan.horizon == 50
    plan.used_s = 60.0
    assert plan.replan(step=30, seconds_per_step=4.0)  # slower machine: fewer steps
    assert plan.horizon == 40
    plan.used_s = 100.0
    plan.replan(step=41, seconds_per_step=4.0)
    assert plan.horizon == 41  # spent: stop now


def test_budget_schedules_keep_the_warmup_share(image_dir, tmp_path):
    cfg = tiny_config(
        image_dir,
        tmp_path,
        **{"train.epochs": 10, "optim.warmup_epochs": 2, "teacher.temp_warmup_epochs": 5},
    )
    s = budget_schedules(cfg, 200, 64)
    assert all(len(v) == 200 for v in s.values())
    assert int(np.argmax(s["lr"])) in (39, 40)  # warm-up: 2 of 10 epochs = 20% of 200 steps
    assert s["teacher_temp"][99] == pytest.approx(cfg.teacher.temp, abs=1e-4)
    assert s["teacher_temp"][0] == cfg.teacher.temp_start
    assert s["lr"][-1] == pytest.approx(cfg.optim.min_lr, rel=0.1)  # cosine ends at min_lr


def fake_clock(monkeypatch, seconds_per_call=1.0):
    """Each clock reading is one `seconds_per_call` later: one tick = one training step."""
    counter = itertools.count()
    clock = SimpleNamespace(perf_counter=lambda: next(counter) * seconds_per_call)
    monkeypatch.setattr(budget_mod, "time", clock)


def test_run_budget_replans_on_a_fake_clock(image_dir, tmp_path, monkeypatch):
    fake_clock(monkeypatch)
    cfg = tiny_config(image_dir, tmp_path, **{"train.time_budget": "20s"})
    rb = RunBudget(cfg, 8)
    rb.start()
    assert rb.tick(1) is None and rb.tick(2) is None  # timing the first steps
    schedules = rb.tick(3)
    assert rb.plan.horizon == 20 and len(schedules["lr"]) == 20
    assert not rb.done(19) and rb.done(20)


def test_budgeted_run_stops_at_the_horizon_and_resumes_exactly(image_dir, tmp_path, monkeypatch):
    budget = {"train.time_budget": "20s", "train.epochs": 100, "data.drop_last": True}
    fake_clock(monkeypatch)
    straight = pretrain(tiny_config(image_dir, tmp_path / "a", **budget))
    assert straight["steps"] == 20  # 3 steps x 1 s timed, then 17 more fit in 20 s
    fake_clock(monkeypatch)
    with stop_after(8), pytest.raises(TrainingInterrupted):
        pretrain(tiny_config(image_dir, tmp_path / "b", **budget))
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pth")
    assert state["budget"]["horizon"] == 20 and state["budget"]["used_s"] == 8.0
    fake_clock(monkeypatch)
    resumed = pretrain(tiny_config(image_dir, tmp_path / "b", **budget), resume=True)
    assert resumed["steps"] == 20
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pth")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pth")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
