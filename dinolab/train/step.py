"""`TrainStep`: one optimizer step of a DINO / DINOv2 run, and nothing else.

It owns what has weights or optimizer state (the meta-architecture: student, teacher, losses,
centres; its data-parallel wrapper; AdamW) and the per-step schedules, and does no I/O: no
dataset, files, logs or clocks. The `Trainer` feeds it batches; benchmarks, distillation and
ablations build it directly (`TrainStep(cfg, device, precision)` then `step(batch, it, epoch)`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dinolab import distributed as dist
from dinolab.config.schema import Config
from dinolab.config.validate import check_training_rules
from dinolab.hardware import autocast
from dinolab.train import parallel
from dinolab.train.build import build_meta_arch, uses_dinov2
from dinolab.train.optim import (
    apply_schedules,
    build_optimizer,
    cancel_backbone_gradients,
    cancel_last_layer_gradients,
    clip_gradients,
    clip_module_norms,
)
from dinolab.train.student_set import networks
from dinolab.train.teacher_update import TeacherUpdate


class TrainStep:
    """Model + optimizer + schedules; `step(batch, it, epoch) -> metrics` (0-d tensors, floats).

    `precision` is a resolved one (bf16 | fp32: `hardware.resolve_precision`). Under torchrun
    every rank builds the same initial weights (seed `train.seed`), then reseeds so drop-path
    masks differ between ranks; `parallel.wrap` applies DDP or FSDP2.
    """

    def __init__(
        self,
        cfg: Config,
        device: torch.device,
        precision: str,
        schedules: dict[str, np.ndarray] | None = None,
        init_weights: bool = True,
    ):
        self.cfg, self.device, self.precision = cfg, device, precision
        self.world_size = dist.get_world_size()
        check_training_rules(cfg, self.world_size)  # config.validate's, before the model
        self.model = build_meta_arch(cfg, init_weights=init_weights).to(device)
        if self.world_size > 1:  # same initial weights everywhere, then distinct drop-path masks
            torch.manual_seed(cfg.train.seed + 1_000_003 * dist.get_rank())
        self.runner = parallel.wrap(self.model, cfg, device, precision)
        self.sharded = parallel.is_sharded(self.model)
        self.channels_last = parallel.uses_channels_last(cfg, self.model)
        # DINOv2 freezes the last layers by a zero lr (AdamW moments still accumulate); DINO
        # drops their gradients (moments untouched), as the two official trainers do.
        self.freeze_by_lr = uses_dinov2(cfg)
        self.optimizer = build_optimizer(
            self.model.student,
            betas=tuple(cfg.optim.betas),
            layer_decay=cfg.optim.layer_decay,
            patch_embed_lr_mult=cfg.optim.patch_embed_lr_mult,
            backbone_lr_mult=cfg.optim.backbone_lr_mult,
            last_layer_freeze=self._last_layer_freeze() if self.freeze_by_lr else None,
        )
        self.schedules = schedules
        self.teacher_update = TeacherUpdate(cfg.train.teacher_update, self.model)
        self.gram = getattr(self.model, "gram_anchor", None)  # DINOv3 Gram teacher, if on

    def values(self, it: int) -> dict[str, float]:
        """lr, wd, teacher momentum and temperature at step `it` (the last ones past the end)."""
        if self.schedules is None:
            raise RuntimeError("TrainStep.schedules is not set: build them with build_schedules.")
        i = min(it, len(self.schedules["lr"]) - 1)
        keys = ("lr", "wd", "momentum", "teacher_temp")
        return {k: float(self.schedules[k][i]) for k in keys}

    def __call__(
        self, batch: dict, it: int, epoch: int, weight: float = 1.0, share: float = 1.0
    ) -> dict:
        """One optimizer step at global step `it` of epoch `epoch`.

        `weight` = this rank's images x processes / global images (the gradient average then
        equals the global-batch mean); `share` = its images / global (for logged means).
        """
        v = self.values(it)
        apply_schedules(self.optimizer, v["lr"], v["wd"], epoch)
        self.teacher_update.before_forward(epoch)
        if self.gram is not None:
            v["gram_weight"] = self.gram.step(it, self.model.teacher.backbone)
        batch = {k: self._to_device(x) for k, x in batch.items()}
        with autocast(self.device, self.precision):
            out = self.runner(batch, v["teacher_temp"])
        self.optimizer.zero_grad(set_to_none=True)
        (out["loss"] if weight == 1.0 else out["loss"] * weight).backward()
        metrics = {k: x.detach() for k, x in out.items()}
        if self.cfg.optim.clip_grad > 0:
            metrics["grad_norm"] = self._clip()
        if not self.freeze_by_lr:
            for head, freeze_epochs in self._heads():
                cancel_last_layer_gradients(head, epoch, freeze_epochs)
        cancel_backbone_gradients(self.model, epoch, self.cfg.train.freeze_backbone_epochs)
        self.teacher_update.before_optimizer_step()
        self.optimizer.step()
        self.teacher_update.after_optimizer_step(v["momentum"])
        if self.world_size > 1:
            metrics = self._global_mean(metrics, share)
        metrics.update(v, epoch=epoch)
        return metrics

    def _heads(self) -> list[tuple[nn.Module, int]]:
        """Each student head with the epochs its last layer stays frozen (iBOT: its own key),
        of every network of a multi-student `StudentSet`."""
        cfg, heads = self.cfg, []
        for net in networks(self.model.student):
            head = net.head
            if isinstance(head, nn.ModuleDict) and "ibot" in head:
                ibot = cfg.ibot.head.freeze_last_layer_epochs
                heads += [(head["dino"], cfg.head.freeze_last_layer_epochs), (head["ibot"], ibot)]
            else:
                heads.append((head, cfg.head.freeze_last_layer_epochs))
        return heads

    def _last_layer_freeze(self) -> dict[int, int]:
        """id(parameter) -> freeze epochs for every head's last layer (DINOv2's lr-0 rule)."""
        freeze = {}
        for head, epochs in self._heads():
            last = [p for n, p in head.named_parameters() if "last_layer" in n]
            if not last and epochs > 0:
                raise ValueError(
                    f"{type(head).__name__} has no 'last_layer' parameters to freeze; set "
                    "head.freeze_last_layer_epochs=0 (and ibot.head.freeze_last_layer_epochs=0)."
                )
            freeze.update({id(p): epochs for p in last})
        return freeze

    def _clip(self) -> torch.Tensor:
        """Clip the student's gradients by `optim.clip_mode`; the norm before clipping."""
        mode, max_norm = self.cfg.optim.clip_mode, self.cfg.optim.clip_grad
        if mode == "per_module_norm":
            clip = parallel.clip_module_norms_sharded if self.sharded else clip_module_norms
        else:
            clip = parallel.clip_gradients_sharded if self.sharded else clip_gradients
        return clip(self.model.student, max_norm)

    def _to_device(self, x):
        if not torch.is_tensor(x):
            return x
        if self.channels_last and x.ndim == 4:
            return x.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=True)

    def _global_mean(self, metrics: dict, share: float) -> dict:
        """Image-weighted means over the processes, in one all-reduce and without a host sync."""
        keys = [k for k, x in metrics.items() if torch.is_tensor(x) and x.numel() == 1]
        if not keys:
            return metrics
        vec = torch.stack([metrics[k].float().reshape(()).to(self.device) for k in keys]) * share
        dist.all_reduce_sum(vec)
        return {**metrics, **dict(zip(keys, vec.unbind(), strict=True))}
