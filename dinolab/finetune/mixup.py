"""Mixup and CutMix on a batch, with label-smoothed soft targets (DeiT's regularisers).

Mixup blends two images, x = lam * x_i + (1 - lam) * x_j; CutMix pastes a box of x_j into x_i
and sets lam to the area left of x_i. The batch is paired with its reverse (timm's "batch"
mode), and the targets mix the same way, so every row of targets sums to 1. Draws come from
a numpy generator seeded per optimizer step (`step_rng`), so a resumed run mixes exactly as an
uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def smooth_one_hot(labels: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """[B, C] targets: 1 - smoothing + smoothing / C on the label, smoothing / C elsewhere."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels[:, None], 1.0 - smoothing + off)


@dataclass(frozen=True)
class Mixer:
    """mixup / cutmix: Beta(alpha, alpha) strengths (0 = off); mix_prob: chance a batch is
    mixed; switch_prob: with both on, the chance of cutmix."""

    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5

    @property
    def enabled(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mix_prob > 0

    def __call__(
        self, images: Tensor, targets: Tensor, rng: np.random.Generator
    ) -> tuple[Tensor, Tensor]:
        """(mixed images, mixed soft targets) for images [B, C, H, W], targets [B, K]."""
        if not self.enabled or rng.random() >= self.mix_prob:
            return images, targets
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < self.switch_prob)
        lam = float(rng.beta(*(2 * [self.cutmix if use_cutmix else self.mixup])))
        flipped = images.flip(0)
        if use_cutmix:
            images, lam = cutmix_images(images, flipped, lam, rng)
        else:
            images = images * lam + flipped * (1.0 - lam)
        return images, targets * lam + targets.flip(0) * (1.0 - lam)


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The mixing draws of optimizer step `step`: a function of (seed, step) alone."""
    return np.random.default_rng([seed, step])


def cutmix_images(
    images: Tensor, other: Tensor, lam: float, rng: np.random.Generator
) -> tuple[Tensor, float]:
    """Paste a box of `other` covering about 1 - lam of the area into `images`; the area
    actually kept (the box is clipped at the border) is returned as the new lam."""
    h, w = images.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    images = images.clone()
    images[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
    return images, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of -sum(targets * log_softmax(logits)) (float32)."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
