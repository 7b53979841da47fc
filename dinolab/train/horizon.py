"""How long a run is: the one horizon that its schedules, progress bar, ETA and stop share.

A run ends after `train.epochs`, or earlier at `train.max_steps`, or when `train.time_budget`
is spent (`budget.RunBudget` plans that horizon from the measured step time, capped by
max_steps). The lr, weight-decay, teacher-momentum and temperature schedules are planned over
the horizon the run really has: a max_steps run ends its cosine at optim.min_lr instead of
being cut off early in it, its warm-ups keeping their share of the run (as under a budget).
"""

from __future__ import annotations

import numpy as np

from dinolab.config.schema import Config
from dinolab.train.budget import budget_schedules
from dinolab.train.schedules import build_schedules


def planned_steps(cfg: Config, iters_per_epoch: int) -> int:
    """Optimizer steps of a run without a time budget: train.epochs, capped by max_steps."""
    steps = cfg.train.epochs * iters_per_epoch
    if cfg.train.max_steps > 0:
        steps = min(steps, cfg.train.max_steps)
    return steps


def run_schedules(cfg: Config, iters_per_epoch: int, total_batch: int) -> dict[str, np.ndarray]:
    """The schedules of `planned_steps` (a time budget re-plans them once it has timed steps)."""
    horizon = planned_steps(cfg, iters_per_epoch)
    if horizon == cfg.train.epochs * iters_per_epoch:
        return build_schedules(cfg, iters_per_epoch, total_batch)
    return budget_schedules(cfg, horizon, total_batch)


def finished_hint(cfg: Config, epoch: int, step: int, iters_per_epoch: int) -> str:
    """What stopped a finished run and which setting to raise to train it further."""
    t = cfg.train
    if t.time_budget:
        what = f"its train.time_budget={t.time_budget} is spent (step {step})"
        return f"{what}; raise train.time_budget to train longer"
    if 0 < t.max_steps <= step and t.max_steps < t.epochs * iters_per_epoch:
        return (
            f"step {step} of train.max_steps={t.max_steps}; raise train.max_steps to train longer"
        )
    return f"epoch {epoch} of train.epochs={t.epochs}; raise train.epochs to train longer"
