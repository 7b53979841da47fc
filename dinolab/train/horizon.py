"""How long a run is: the one horizon that its schedules, progress bar, ETA and stop share.

A run ends after `train.epochs`, or earlier at `train.max_steps`, or when `train.time_budget`
is spent (`budget.RunBudget` plans that horizon from the measured step time).
"""

from __future__ import annotations

from dinolab.config.schema import Config


def planned_steps(cfg: Config, iters_per_epoch: int) -> int:
    """Optimizer steps of a run without a time budget: train.epochs, capped by max_steps."""
    steps = cfg.train.epochs * iters_per_epoch
    if cfg.train.max_steps > 0:
        steps = min(steps, cfg.train.max_steps)
    return steps
