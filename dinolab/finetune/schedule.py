"""The lr of every optimizer step of a fine-tuning run, and which steps train the head alone.

linear-then-full (`head_epochs` > 0): the head trains alone first with its own warm-up +
cosine (peak lr x `head_lr_mult`), then the whole network with a fresh warm-up + cosine;
without it one warm-up + cosine spans the run. The peak lr is `lr` per 256 images, scaled with
the effective batch (batch x accumulation x processes), as DeiT and BEiT do.
"""

from __future__ import annotations

import numpy as np

from dinolab.config.finetune import FinetuneConfig
from dinolab.train.schedules import cosine_schedule


def peak_lr(cfg: FinetuneConfig, effective_batch: int) -> float:
    return cfg.lr * effective_batch / 256


def lr_schedule(cfg: FinetuneConfig, steps_per_epoch: int, effective_batch: int) -> np.ndarray:
    """[epochs * steps_per_epoch] peak-relative lrs (the head's; blocks scale them down)."""
    peak = peak_lr(cfg, effective_batch)
    head = min(cfg.head_epochs, cfg.epochs)
    phases = [
        (head, min(cfg.warmup_epochs, head), peak * cfg.head_lr_mult),
        (cfg.epochs - head, cfg.warmup_epochs, peak),
    ]
    parts = [
        cosine_schedule(top, cfg.min_lr, epochs, steps_per_epoch, warmup)
        for epochs, warmup, top in phases
        if epochs > 0
    ]
    return np.concatenate(parts)


def backbone_frozen(cfg: FinetuneConfig, epoch: int) -> bool:
    """Whether epoch `epoch` (0-based) trains the head alone (linear-then-full)."""
    return epoch < cfg.head_epochs
