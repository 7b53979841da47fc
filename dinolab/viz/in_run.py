"""Attention maps during pretraining: a few fixed images every `viz.every_epochs` epochs.

The same images at every step of the run, so the PNGs in `run_dir/viz/` show the attention
going from noise to objects. The images are found when the trainer starts, so a wrong path
fails at step 0, not after hours of training.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dinolab.run_dir import VIZ
from dinolab.viz.attention import attention_maps, plot_attention
from dinolab.viz.images import image_paths

log = logging.getLogger("dinolab")


class RunPictures:
    """`due(epoch)` says when; `run(teacher_backbone, epoch)` writes one attention PNG."""

    def __init__(self, cfg, run_dir: str | Path, device: torch.device | str = "cpu") -> None:
        viz = cfg.viz
        self.every = int(viz.every_epochs)
        self.size = int(viz.image_size)
        self.block = int(viz.block)
        self.mean, self.std = tuple(cfg.data.mean), tuple(cfg.data.std)
        self.device = torch.device(device)
        self.out_dir = Path(run_dir) / VIZ
        self.enabled = self.every > 0 and cfg.model.arch != "resnet50"
        if self.every > 0 and not self.enabled:
            log.warning("viz.every_epochs is set but a ResNet has no attention maps: skipped")
        self.paths: list[Path] = []
        if self.enabled:
            self.paths = image_paths(list(viz.images) or [cfg.data.path])[: max(viz.num_images, 1)]

    def due(self, epoch: int) -> bool:
        """True after every `viz.every_epochs`-th completed epoch (epoch counts from 1)."""
        return self.enabled and epoch > 0 and epoch % self.every == 0

    def run(self, backbone: nn.Module, epoch: int) -> Path:
        """Draw the teacher's attention maps of the fixed images; the model's mode is kept."""
        was_training = backbone.training
        try:
            maps = attention_maps(
                backbone, self.paths, self.size, self.block, self.mean, self.std, self.device
            )
        finally:
            backbone.train(was_training)
        out = plot_attention(maps, self.out_dir / f"attention_epoch{epoch:04d}.png")
        log.info("epoch %d attention maps: %s", epoch, out)
        return out
