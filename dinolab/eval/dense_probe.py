"""Training a per-patch head on cached feature maps: random (scale, flip) crops, AdamW,
warm-up + cosine. Segmentation and depth differ only in the head, the target and the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from dinolab.eval.dense_features import DenseFeatures


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from 1 to 0."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def resized_target(
    target: np.ndarray, size_hw: tuple[int, int], flip: bool, dtype: torch.dtype
) -> torch.Tensor:
    """A label or depth map brought to a feature grid's pixel size (nearest: no mixed labels,
    invalid depth stays 0), mirrored like its features."""
    if target.shape != tuple(size_hw):
        target = np.asarray(Image.fromarray(target).resize(size_hw[::-1], Image.NEAREST))
    t = torch.from_numpy(np.array(target)).to(dtype)
    return t.flip(-1) if flip else t


def cached_targets(
    targets: list[np.ndarray], feats: DenseFeatures, patch: int, dtype: torch.dtype
) -> Callable[[int, int, bool], torch.Tensor]:
    """`target_of(i, s, flip)`: image i's target at the pixel size of its (scale index s, flip)
    feature map (`resized_target`), computed once and kept."""
    resized: dict = {}

    def target_of(i: int, s: int, flip: bool) -> torch.Tensor:
        if (i, s, flip) not in resized:
            hw = tuple(x * patch for x in feats.get(i, s, flip).shape[-2:])
            resized[(i, s, flip)] = resized_target(targets[i], hw, flip, dtype)
        return resized[(i, s, flip)]

    return target_of


class CropSampler:
    """Batches of same-size crops of (features, target): random image, scale, flip and
    position; maps smaller than the crop are padded (features 0, target `pad`)."""

    def __init__(
        self,
        features: DenseFeatures,
        target_of: Callable[[int, int, bool], torch.Tensor],
        n_images: int,
        crop_cells: int,
        patch: int,
        pad: float,
        seed: int = 0,
    ) -> None:
        self.features, self.target_of, self.n = features, target_of, n_images
        self.crop, self.patch, self.pad = crop_cells, patch, pad
        self.rng = np.random.default_rng(seed)

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, p = self.crop, self.patch
        feats = torch.zeros(batch, self.features.dim, c, c)
        first = self.target_of(0, 0, False)
        targets = torch.full((batch, c * p, c * p), self.pad, dtype=first.dtype)
        for b in range(batch):
            i = int(self.rng.integers(self.n))
            s = int(self.rng.integers(len(self.features.scales)))
            flip = bool(self.features.flips[int(self.rng.integers(len(self.features.flips)))])
            fmap, target = self.features.get(i, s, flip), self.target_of(i, s, flip)
            h, w = fmap.shape[-2:]
            y = int(self.rng.integers(max(1, h - c + 1)))
            x = int(self.rng.integers(max(1, w - c + 1)))
            ch, cw = min(c, h), min(c, w)
            feats[b, :, :ch, :cw] = fmap[:, y : y + ch, x : x + cw]
            targets[b, : ch * p, : cw * p] = target[y * p : (y + ch) * p, x * p : (x + cw) * p]
        return feats, targets


def train_head(
    head: nn.Module,
    sample: CropSampler,
    loss_of: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    *,
    steps: int,
    batch: int,
    lr: float,
    weight_decay: float,
    warmup: int,
    seed: int = 0,
    progress: bool = True,
    desc: str = "head",
) -> list[float]:
    """AdamW steps of `loss_of(head(features), targets, step)`; the loss of every step."""
    torch.manual_seed(seed)
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(step, steps, warmup)
        feats, targets = sample(batch)
        loss = loss_of(head(feats), targets, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    head.eval()
    return losses
