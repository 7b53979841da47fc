"""`schedule.*`: the shape of the lr, weight-decay, teacher-momentum and temperature schedules.

`cosine` (DINO, DINOv2): a warm-up, then a cosine from each value's start to its end over the
planned run. `constant` (DINOv3): the same warm-ups, then every value held at its peak, so the
run can continue "as long as useful" without a planned horizon (raising `train.epochs` on
resume leaves every past value unchanged); `cooldown_epochs` > 0 ends the run with a cosine
from the peak to the end values. Start / peak / end of each schedule (`train/schedules.py`):
lr 0 / peak lr / optim.min_lr, wd optim.weight_decay / weight_decay / weight_decay_end,
momentum teacher.momentum / momentum / momentum_end, temperature teacher.temp_start / temp / temp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScheduleConfig:
    """Cosine (DINO) or constant-after-warm-up (DINOv3) schedules."""

    kind: str = "cosine"  # cosine | constant
    cooldown_epochs: float = 0.0  # constant only: final cosine from peak to end (0: none)
