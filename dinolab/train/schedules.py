"""Per-iteration schedules of a DINO run, precomputed as arrays indexed by the global step.

Precomputing keeps the step loop trivial (`lr = schedules["lr"][it]`) and makes resuming
exact: the step counter alone restores every hyper-parameter. Two shapes (`schedule.kind`):
DINO's cosine over the planned run, or DINOv3's constant phase after the warm-up (with an
optional final cool-down), whose values never depend on how long the run is planned to be.
"""

from __future__ import annotations

import math

import numpy as np

from dinolab.config.schema import Config, OptimConfig


def cosine_schedule(
    base_value: float,
    final_value: float,
    epochs: int,
    iters_per_epoch: int,
    warmup_epochs: float = 0,
    start_warmup_value: float = 0.0,
) -> np.ndarray:
    """DINO's `cosine_scheduler`: linear warm-up to base_value, then cosine to final_value.

    Length epochs * iters_per_epoch. A warm-up longer than the run is cut where the run ends
    (the ramp keeps the slope of the configured warm-up).
    """
    total = int(epochs * iters_per_epoch)
    warmup_iters = int(warmup_epochs * iters_per_epoch)
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters) if warmup_iters > 0 else []
    iters = np.arange(max(total - warmup_iters, 0))
    cosine = final_value + 0.5 * (base_value - final_value) * (
        1 + np.cos(np.pi * iters / max(len(iters), 1))
    )
    return np.concatenate((warmup, cosine))[:total].astype(np.float64)


def teacher_temp_schedule(
    start: float, end: float, warmup_epochs: float, epochs: int, iters_per_epoch: int
) -> np.ndarray:
    """Teacher temperature per iteration: linear start -> end over the warm-up, then end.

    DINO steps it once per epoch; per iteration is the same ramp, only smoother.
    """
    total = int(epochs * iters_per_epoch)
    warmup_iters = int(warmup_epochs * iters_per_epoch)
    ramp = np.linspace(start, end, warmup_iters) if warmup_iters > 0 else np.array([])
    flat = np.full(max(total - warmup_iters, 0), end, dtype=np.float64)
    return np.concatenate((ramp, flat))[:total].astype(np.float64)


def constant_schedule(
    start: float,
    peak: float,
    end: float,
    total: int,
    warmup_iters: int = 0,
    cooldown_iters: int = 0,
) -> np.ndarray:
    """DINOv3's schedule {start, peak, end}: linear start -> peak over `warmup_iters`, peak held,
    then a cosine peak -> end over the last `cooldown_iters` (none: peak to the end of the run).

    Length `total`; a warm-up longer than the run is cut where the run ends.
    """
    warmup = np.linspace(start, peak, warmup_iters) if warmup_iters > 0 else np.array([])
    cooldown_iters = max(min(cooldown_iters, total - len(warmup)), 0)
    i = np.arange(cooldown_iters)
    cooldown = end + 0.5 * (peak - end) * (1 + np.cos(np.pi * i / max(cooldown_iters, 1)))
    flat = np.full(max(total - warmup_iters - cooldown_iters, 0), peak, dtype=np.float64)
    return np.concatenate((warmup, flat, cooldown))[:total].astype(np.float64)


SCHEDULE_KINDS = ("cosine", "constant")
LR_SCALINGS = ("linear_256", "sqrt_1024")


def peak_lr(optim: OptimConfig, total_batch: int) -> float:
    """base_lr scaled to the global batch: linearly against 256 (DINO) or by sqrt(B / 1024)
    (DINOv2, whose base_lr is given for a batch of 1024)."""
    if optim.lr_scaling == "linear_256":
        return optim.base_lr * total_batch / 256.0
    if optim.lr_scaling == "sqrt_1024":
        return optim.base_lr * math.sqrt(total_batch / 1024.0)
    raise ValueError(
        f"optim.lr_scaling must be one of {', '.join(LR_SCALINGS)}, not '{optim.lr_scaling}'."
    )


def build_schedules(cfg: Config, iters_per_epoch: int, total_batch: int) -> dict[str, np.ndarray]:
    """All schedules of a run, each of length train.epochs * iters_per_epoch.

    Keys: `lr` (peak `peak_lr(cfg.optim, total_batch)` after a warm-up from 0, cosine to
    optim.min_lr), `wd` (cosine weight_decay -> weight_decay_end), `momentum` (teacher EMA,
    cosine teacher.momentum -> teacher.momentum_end), `teacher_temp` (teacher.temp_*).
    """
    if iters_per_epoch < 1:
        raise ValueError(
            f"An epoch has {iters_per_epoch} iterations: the dataset is smaller than one batch; "
            "add images or lower train.batch_size."
        )
    o, t, epochs = cfg.optim, cfg.teacher, cfg.train.epochs
    if cfg.schedule.kind == "constant":
        return constant_schedules(cfg, iters_per_epoch, total_batch)
    if cfg.schedule.kind != "cosine":
        raise ValueError(
            f"schedule.kind must be one of {', '.join(SCHEDULE_KINDS)}, not '{cfg.schedule.kind}'."
        )
    return {
        "lr": cosine_schedule(
            peak_lr(o, total_batch), o.min_lr, epochs, iters_per_epoch, o.warmup_epochs
        ),
        "wd": cosine_schedule(o.weight_decay, o.weight_decay_end, epochs, iters_per_epoch),
        "momentum": cosine_schedule(t.momentum, t.momentum_end, epochs, iters_per_epoch),
        "teacher_temp": teacher_temp_schedule(
            t.temp_start, t.temp, t.temp_warmup_epochs, epochs, iters_per_epoch
        ),
    }


def constant_schedules(
    cfg: Config, iters_per_epoch: int, total_batch: int
) -> dict[str, np.ndarray]:
    """`schedule.kind=constant` (DINOv3): each schedule {start, peak, end} held at its peak after
    its warm-up, the last `schedule.cooldown_epochs` a cosine to its end value.

    lr: 0 -> peak_lr over optim.warmup_epochs -> optim.min_lr; wd: weight_decay held ->
    weight_decay_end; momentum: teacher.momentum held -> momentum_end; temperature: temp_start
    -> temp over teacher.temp_warmup_epochs, then temp.
    """
    o, t = cfg.optim, cfg.teacher
    total = int(cfg.train.epochs * iters_per_epoch)
    cool = int(cfg.schedule.cooldown_epochs * iters_per_epoch)

    def iters(epochs: float) -> int:
        return int(epochs * iters_per_epoch)

    lr = peak_lr(o, total_batch)
    return {
        "lr": constant_schedule(0.0, lr, o.min_lr, total, iters(o.warmup_epochs), cool),
        "wd": constant_schedule(o.weight_decay, o.weight_decay, o.weight_decay_end, total, 0, cool),
        "momentum": constant_schedule(t.momentum, t.momentum, t.momentum_end, total, 0, cool),
        "teacher_temp": constant_schedule(
            t.temp_start, t.temp, t.temp, total, iters(t.temp_warmup_epochs), cool
        ),
    }
