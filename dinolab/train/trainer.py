"""The DINO training loop: schedules, steps, EMA, checkpoints, logs and the end-of-run exports.

Resume is exact: the data order and every sample's augmentation are pure functions of
(seed, epoch, index), and the model RNG is restored from the checkpoint, so a run that is killed
and resumed ends with the same weights as one that ran straight through.

Under torchrun / SLURM every process runs this same loop on its shard of each global batch
(`data.samplers`); `train.parallel` picks DDP or FSDP2 (`train.parallel`), the per-process loss
is weighted by its share of the global batch's images, logged metrics are global means, and only
rank 0 writes logs, progress and config.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import NoReturn

import torch
from torch import nn

from dinolab import distributed as dist
from dinolab.config.loader import save_config, to_yaml
from dinolab.config.schema import Config
from dinolab.data import EpochSampler, IBOTBatchMasks, build_dataset
from dinolab.data.augment_batched import multicrop_pipeline
from dinolab.data.build import require_readable
from dinolab.distributed import resolve_device
from dinolab.hardware import probe_cpu
from dinolab.run_dir import (
    CHECKPOINT,
    CONFIG,
    CURVES,
    METRICS,
    SUMMARY,
    TEACHER_FILE,
    export_teacher,
    has_checkpoint,
)
from dinolab.train.budget import RunBudget
from dinolab.train.horizon import finished_hint, planned_steps, run_schedules
from dinolab.train.interrupt import StopSignal, TrainingInterrupted
from dinolab.train.loggers import check_loggers, open_loggers
from dinolab.train.monitor import MetricsLogger
from dinolab.train.progress import RunProgress, epoch_label
from dinolab.train.run_checkpoint import RunCheckpoints
from dinolab.train.runtime import build_loader, per_process_batch, resolve_runtime
from dinolab.train.step import TrainStep
from dinolab.train.text_log import attach_text_log, detach_text_log

log = logging.getLogger("dinolab")
__all__ = ["CHECKPOINT", "Trainer", "per_process_batch", "resolve_device"]


class Trainer(RunCheckpoints):
    """Owns one pretraining run in `cfg.out_dir`."""

    def __init__(self, cfg: Config, resume: bool = False):
        self.cfg = cfg
        t = cfg.train
        check_loggers(cfg)  # an unknown or missing logger fails before anything is written
        self.run_dir = Path(cfg.out_dir)
        self.runtime = resolve_runtime(cfg)
        self.device, self.precision = self.runtime.device, self.runtime.precision
        self.threads, self.runtime_notes = self.runtime.threads, self.runtime.notes
        dist.init_from_env(t.dist_backend, t.dist_timeout_s, self.device.type == "cuda")
        self.is_main = dist.is_main_process()
        self.world_size = dist.get_world_size()
        dist.check_same_config(to_yaml(cfg))
        self.batch_size = per_process_batch(cfg, self.world_size)
        self.global_batch = self.batch_size * self.world_size
        torch.manual_seed(t.seed)
        if resume and not has_checkpoint(self.run_dir):
            raise FileNotFoundError(
                f"Run directory '{self.run_dir}' has no {CHECKPOINT} to resume from: start a new "
                "run or point --resume at a run directory that has one."
            )
        transform, self.batch_augment = multicrop_pipeline(cfg.data)  # data.augment_impl
        self.dataset = build_dataset(
            cfg.data.path, cfg.data.format, transform, cache_decoded=cfg.data.cache_decoded
        )
        require_readable(self.dataset, cfg.data.path)
        self.sampler = EpochSampler(
            len(self.dataset),
            self.batch_size,
            t.seed,
            rank=dist.get_rank(),
            world_size=self.world_size,
            drop_last=cfg.data.drop_last,
        )
        self.train_step = TrainStep(cfg, self.device, self.precision, init_weights=not resume)
        self.model, self.optimizer = self.train_step.model, self.train_step.optimizer
        self.sharded = self.train_step.sharded
        self.masks = IBOTBatchMasks.from_config(cfg)  # None for DINO: no mask cost
        self.iters_per_epoch = self.sampler.batches_per_epoch
        self.schedules = run_schedules(cfg, self.iters_per_epoch, self.global_batch)
        self.budget = RunBudget(cfg, self.global_batch) if t.time_budget else None
        self.stop = StopSignal(t.stop_grace_s)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.skipped: dict[str, None] = {}  # each unreadable file once, in the order met
        if resume:
            self._load(self.run_dir / CHECKPOINT)
        self.loader = build_loader(
            self.dataset, self.sampler, self.masks, self.runtime, t.seed, self.batch_augment
        )
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            attach_text_log(self.run_dir)
            notes = [f"resolved on {probe_cpu().model} ({self.device}):", *self.runtime_notes]
            save_config(cfg, self.run_dir / CONFIG, notes)
            for note in self.runtime_notes:
                log.info(note)
        loggers = open_loggers(cfg, self.run_dir, self.global_step) if self.is_main else []
        self.logger = MetricsLogger(self.run_dir, self.is_main, loggers)
        self.online_knn = None
        if self.is_main and cfg.eval.every_epochs > 0:
            from dinolab.eval.online import OnlineKNN

            self.online_knn = OnlineKNN(
                cfg.eval, cfg.data, self.device, self.precision, self.threads.num_workers
            )
        self.pictures = None
        if self.is_main and cfg.viz.every_epochs > 0:
            from dinolab.viz.in_run import RunPictures

            self.pictures = RunPictures(cfg, self.run_dir, self.device)
        self.final_teacher: nn.Module | None = None  # set by fit() on rank 0

    # ----------------------------------------------------------------- the loop
    @property
    def schedules(self) -> dict:
        """lr, wd, momentum and teacher temperature per step (held by the TrainStep)."""
        return self.train_step.schedules

    @schedules.setter
    def schedules(self, value: dict) -> None:
        self.train_step.schedules = value

    def _step(self, batch: dict, weight: float = 1.0, share: float = 1.0) -> dict:
        """One optimizer step at the current step and epoch (see `TrainStep.__call__`)."""
        return self.train_step(batch, self.global_step, self.epoch, weight, share)

    def _done(self) -> bool:
        max_steps = self.cfg.train.max_steps
        if 0 < max_steps <= self.global_step:
            return True
        if self.budget is not None:
            return self.budget.done(self.global_step)
        return self.epoch >= self.cfg.train.epochs

    def fit(self) -> dict:
        """Train until `train.epochs` (or `train.max_steps`); returns a summary dict."""
        with dist.collective_errors("training"):
            return self._fit()

    def _fit(self) -> dict:
        cfg = self.cfg.train
        if self._done():
            hint = finished_hint(self.cfg, self.epoch, self.global_step, self.iters_per_epoch)
            log.info("run in %s is already finished (%s)", self.run_dir, hint)
        self.model.train()
        t_start = time.perf_counter()
        if self.budget is not None:
            self.budget.start()
        show, epochs = self.is_main and cfg.progress, None if self.budget else cfg.epochs
        label = epoch_label(self.epoch + 1, epochs)
        with self.stop, RunProgress(self._horizon(), self.global_step, show, label) as progress:
            while not self._done():
                progress.set_epoch(self.epoch + 1, epochs)
                self._train_epoch(progress)
        self.save()
        elapsed = time.perf_counter() - t_start
        return self._finish(elapsed)

    def _horizon(self) -> int | None:
        """Planned total steps (None while a time budget has no plan yet)."""
        if self.budget is not None:
            return self.budget.plan.horizon or None
        return planned_steps(self.cfg, self.iters_per_epoch)

    def _train_epoch(self, progress: RunProgress) -> None:
        """The rest of the current epoch (or up to the stop), then its evaluations and save."""
        cfg = self.cfg.train
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start_batch(self.step_in_epoch)
        for batch in self.loader:
            self._note_skipped(batch["skipped"])
            mine = batch["num_images"]
            counts, signum = self.stop.gather(mine)  # one collective: all ranks stop together
            if signum:
                self._interrupted(signum)
            total, metrics = sum(counts), None
            if min(counts) > 0:
                metrics = self._step(batch, mine * self.world_size / total, mine / total)
                self.logger.log_step(self.global_step, metrics)
            elif total > 0:
                log.warning("step %d skipped: a process had no readable image", self.global_step)
            self.global_step += 1
            self.step_in_epoch += 1
            if self.budget is not None and (new := self.budget.tick(self.global_step)):
                self.schedules = new
                progress.set_total(self.budget.plan.horizon)
            progress.update(metrics, total)
            if self.global_step % cfg.log_every_steps == 0:
                self.logger.flush()
            every = cfg.checkpoint_every_steps
            if every > 0 and self.global_step % every == 0:
                self.save()
            if self._done():
                break
        if self.step_in_epoch >= self.iters_per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self._epoch_evals()
            if self.budget is not None:  # evaluations do not count against the budget
                self.budget.start()
            if self.epoch % cfg.checkpoint_every_epochs == 0 and not self._done():
                self.save()

    def _interrupted(self, signum: int) -> NoReturn:
        """Save where the run stands (the batch in hand is trained again on resume), stop."""
        self.stop.saving()
        self.save()
        if self.is_main:
            self.logger.close()
        raise TrainingInterrupted(self.run_dir, signum, self.global_step)

    def _epoch_evals(self) -> None:
        """Online k-NN and attention pictures on rank 0 (under FSDP all ranks gather first)."""
        knn_every, viz_every = self.cfg.eval.every_epochs, self.cfg.viz.every_epochs
        knn_due = knn_every > 0 and self.epoch % knn_every == 0
        viz_due = viz_every > 0 and self.epoch % viz_every == 0
        if not (knn_due or viz_due):
            return
        teacher = self._plain_backbone(self.model.teacher.backbone)
        student = None
        if knn_due and self.cfg.eval.student:
            student = self._plain_backbone(self.model.student.backbone)
        if self.online_knn is not None and self.online_knn.due(self.epoch):
            self.logger.flush()
            scores = self.online_knn.run(teacher, student)
            if self.budget is not None:  # x-axis of accuracy vs time: training time, no evals
                scores["train_minutes"] = round(self.budget.plan.used_s / 60, 3)
            self.logger.log_scalars(self.global_step, scores, prefix="knn")
            best = {k: v for k, v in scores.items() if k.endswith("_top1")}
            log.info("epoch %d online k-NN: %s", self.epoch, best)
        if self.pictures is not None and self.pictures.due(self.epoch):
            picture = self.pictures.run(teacher, self.epoch)
            self.logger.log_image("attention", picture, self.global_step)

    def _note_skipped(self, errors: list[str]) -> None:
        """Warn once per unreadable file and run (every epoch meets the same files again)."""
        for err in errors:
            if err not in self.skipped:
                self.skipped[err] = None
                log.warning("skipped unreadable image %s", err)

    def close(self) -> None:
        """Close the loggers and train.log (`pretrain` does; after `fit`, call it yourself)."""
        self.logger.close()
        detach_text_log()

    def _finish(self, elapsed: float) -> dict:
        summary = {
            "run_dir": str(self.run_dir),
            "epochs": self.epoch,
            "steps": self.global_step,
            "train_seconds_this_session": round(elapsed, 1),
            "skipped_images": len(self.skipped),
        }
        if self.budget is not None:  # training time used of the budget, all sessions
            summary["train_minutes"] = round(self.budget.plan.used_s / 60, 3)
        self.final_teacher = self._plain_backbone(self.model.teacher.backbone)
        if self.is_main:
            teacher_file = self.run_dir / TEACHER_FILE
            if not self.sharded:  # a sharded save() has just exported these same weights
                export_teacher(self.final_teacher, self.cfg, self.run_dir)
            summary["teacher_backbone"] = str(teacher_file)
            from dinolab.viz.curves import plot_training_curves

            metrics = self.run_dir / METRICS
            if metrics.is_file() and metrics.stat().st_size > 0:
                summary["curves"] = str(
                    plot_training_curves(metrics, self.run_dir / CURVES, self.cfg.head.out_dim)
                )
                self.logger.log_image("curves", self.run_dir / CURVES, self.global_step)
            (self.run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
        return summary
