"""`train.time_budget`: fit a run's schedules to wall-clock time instead of epochs.

A user with a CPU thinks in minutes, not epochs. Given a budget (`"30min"`, `"2h"`, `"90s"`),
the run plans a horizon of H steps from its measured step time and builds every schedule (lr
warm-up + cosine, weight decay, teacher momentum, teacher temperature) for H steps, the
warm-ups keeping the share of the run the config gives them (`optim.warmup_epochs /
train.epochs`), and never past `train.max_steps`. The horizon is re-planned as the step
time changes (a shared machine, a slower epoch), so the cosine ends when the budget does.
Training time counts (steps, data waits, checkpoints); online k-NN and pictures do not. The
plan (budget, time used, horizon) is saved in every checkpoint, so a resumed run continues it
with the budget that is left.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time

import numpy as np
import torch

from dinolab import distributed as dist
from dinolab.config.schema import Config
from dinolab.train.schedules import build_schedules

log = logging.getLogger("dinolab")

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m|hr|h|d)")


def parse_duration(text: str) -> float:
    """'30min', '2h', '90s', '1h30min', '1.5h' -> seconds; anything else is one clear error."""
    s = text.strip().lower().replace(" ", "")
    parts = _PART.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ValueError(
            f"train.time_budget='{text}' is not a duration: write e.g. 90s, 30min, 2h or 1h30min."
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"train.time_budget='{text}' must be longer than 0 seconds.")
    return seconds


@dataclasses.dataclass
class BudgetPlan:
    """How much of the budget is used and how many steps the run is planned to take."""

    budget_s: float
    used_s: float = 0.0
    horizon: int = 0  # planned total optimizer steps (0 = not planned yet)
    first_plan_after: int = 3  # steps timed before the first plan (the first ones are slow)

    def remaining_s(self) -> float:
        return max(self.budget_s - self.used_s, 0.0)

    def replan(self, step: int, seconds_per_step: float, max_steps: int = 0) -> bool:
        """Set the horizon from the time left and the step time (at most `max_steps` when > 0);
        True when it changed by >1%."""
        left = int(self.remaining_s() / max(seconds_per_step, 1e-6))
        horizon = min(step + left, max_steps) if max_steps > 0 else step + left
        changed = self.horizon == 0 or abs(horizon - self.horizon) > 0.01 * self.horizon
        if changed:
            self.horizon = horizon
        return changed

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> BudgetPlan:
        return cls(**state)


def budget_schedules(cfg: Config, horizon: int, total_batch: int) -> dict[str, np.ndarray]:
    """The run's schedules stretched to `horizon` steps; warm-ups keep their share of the run."""
    epochs = max(cfg.train.epochs, 1)
    one_run = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, epochs=1),
        optim=dataclasses.replace(cfg.optim, warmup_epochs=cfg.optim.warmup_epochs / epochs),
        teacher=dataclasses.replace(
            cfg.teacher, temp_warmup_epochs=cfg.teacher.temp_warmup_epochs / epochs
        ),
        schedule=dataclasses.replace(
            cfg.schedule, cooldown_epochs=cfg.schedule.cooldown_epochs / epochs
        ),
    )
    return build_schedules(one_run, max(horizon, 1), total_batch)


class RunBudget:
    """The trainer's collaborator for a time-budgeted run: clock, re-planning, schedules.

    Under torchrun every rank re-plans at the same steps from the slowest rank's numbers (one
    small all-reduce), so all ranks keep one horizon and stop at the same step.
    """

    REPLAN_EVERY = 10  # steps between re-plans after the first plan

    def __init__(self, cfg: Config, total_batch: int):
        self.cfg, self.total_batch = cfg, total_batch
        self.plan = BudgetPlan(parse_duration(cfg.train.time_budget))
        self._mark = 0.0
        self._session_steps = 0
        self._session_used = 0.0

    def load_state(self, state: dict) -> None:
        """Continue a saved plan; the budget itself is this config's (it may have been raised)."""
        saved = BudgetPlan.from_state(state)
        self.plan.used_s, self.plan.horizon = saved.used_s, saved.horizon

    def schedules(self, fallback: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The schedules of the planned horizon, or `fallback` until there is a plan."""
        if self.plan.horizon <= 0:
            return fallback
        return budget_schedules(self.cfg, self.plan.horizon, self.total_batch)

    def start(self) -> None:
        """Start (or restart after a pause) the clock."""
        self._mark = time.perf_counter()

    def tick(self, step: int) -> dict[str, np.ndarray] | None:
        """Count the time since the last tick; new schedules when the horizon was re-planned."""
        now = time.perf_counter()
        self.plan.used_s += now - self._mark
        self._session_used += now - self._mark
        self._mark = now
        self._session_steps += 1
        first = self.plan.first_plan_after
        due = self._session_steps == first or (
            self._session_steps > first and step % self.REPLAN_EVERY == 0
        )
        if not due:
            return None
        numbers = torch.tensor([self.plan.used_s, self._session_used / self._session_steps])
        used_s, per_step = (float(v) for v in dist.all_reduce_max(numbers))
        self.plan.used_s = used_s
        before = self.plan.horizon
        if not self.plan.replan(step, per_step, self.cfg.train.max_steps):
            return None
        if before == 0:
            log.info(
                "time budget %s: %d steps planned at %.2f s/step",
                self.cfg.train.time_budget,
                self.plan.horizon,
                per_step,
            )
        return budget_schedules(self.cfg, self.plan.horizon, self.total_batch)

    def done(self, step: int) -> bool:
        return self.plan.horizon > 0 and step >= self.plan.horizon

    def left_s(self) -> float:
        return self.plan.remaining_s()
