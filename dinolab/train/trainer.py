"""The DINO training loop: schedules, steps, EMA, checkpoints, logs and the end-of-run exports.

Resume is exact: the data order and every sample's augmentation are pure functions of
(seed, epoch, index), and the model RNG is restored from the checkpoint, so a run that is killed
and resumed ends with the same weights as one that ran straight through.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dinolab.config.loader import save_config, to_yaml
from dinolab.config.schema import Config
from dinolab.data import EpochSampler, MultiCropAugmentation, build_dataset, collate_multicrop
from dinolab.train import distributed as dist
from dinolab.train.checkpoint import (
    load_checkpoint,
    load_state_dict_strict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dinolab.train.export import export_backbone
from dinolab.train.meta_arch import DINOMetaArch
from dinolab.train.monitor import MetricsLogger
from dinolab.train.optim import (
    apply_schedules,
    build_optimizer,
    cancel_last_layer_gradients,
    clip_gradients,
)
from dinolab.train.schedules import build_schedules

log = logging.getLogger("dinolab")
CHECKPOINT = "checkpoint.pth"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CPU and GPU; weights, optimizer and loss stay float32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"train.precision must be 'bf16' or 'fp32', not '{precision}'.")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class Trainer:
    """Owns one pretraining run in `cfg.out_dir`."""

    def __init__(self, cfg: Config, resume: bool = False):
        self.cfg = cfg
        self.run_dir = Path(cfg.out_dir)
        self.device = resolve_device(cfg.train.device)
        self.is_main = dist.is_main_process()
        self.world_size = dist.get_world_size()
        torch.manual_seed(cfg.train.seed)
        if resume and not (self.run_dir / CHECKPOINT).is_file():
            raise FileNotFoundError(
                f"Run directory '{self.run_dir}' has no {CHECKPOINT} to resume from: start a new "
                "run or point --resume at a run directory that has one."
            )
        self.dataset = build_dataset(
            cfg.data.path,
            cfg.data.format,
            transform=MultiCropAugmentation.from_config(cfg.data),
            cache_decoded=cfg.data.cache_decoded,
        )
        self.sampler = EpochSampler(
            len(self.dataset),
            cfg.train.batch_size,
            cfg.train.seed,
            rank=dist.get_rank(),
            world_size=self.world_size,
        )
        self.model = DINOMetaArch(cfg).to(self.device)
        self.optimizer = build_optimizer(self.model.student, betas=tuple(cfg.optim.betas))
        self.iters_per_epoch = self.sampler.batches_per_epoch
        total_batch = cfg.train.batch_size * self.world_size
        self.schedules = build_schedules(cfg, self.iters_per_epoch, total_batch)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.skipped: list[str] = []
        if resume:
            self._load(self.run_dir / CHECKPOINT)
        self.loader = self._loader()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
        self.logger = MetricsLogger(self.run_dir, self.is_main, cfg.train.tensorboard)
        self.online_knn = None
        if self.is_main and cfg.eval.every_epochs > 0:
            from dinolab.eval.online import OnlineKNN

            self.online_knn = OnlineKNN(cfg.eval, cfg.data, self.device, cfg.train.precision)

    def _loader(self) -> DataLoader:
        workers = self.cfg.data.num_workers
        return DataLoader(
            self.dataset,
            batch_size=self.cfg.train.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate_multicrop,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,  # keeps decoded-image caches across epochs
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(self.cfg.train.seed),  # keep global RNG
        )

    # ----------------------------------------------------------------- checkpoints
    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "rng": rng_state(),
            "config": to_yaml(self.cfg),
            "skipped": self.skipped,
        }

    def save(self) -> None:
        self.logger.flush()  # raises on a non-finite loss before anything is written
        if self.is_main:
            save_checkpoint(self.run_dir / CHECKPOINT, self._state())
            keep = self.cfg.train.keep_checkpoints
            if keep > 0 and self.step_in_epoch == 0:
                save_checkpoint(self.run_dir / f"checkpoint_{self.epoch:04d}.pth", self._state())
                for old in sorted(self.run_dir.glob("checkpoint_[0-9]*.pth"))[:-keep]:
                    old.unlink()

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        load_state_dict_strict(self.model, state["model"], "this run's model")
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.skipped = list(state.get("skipped", []))
        set_rng_state(state["rng"])
        log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.global_step)

    # ----------------------------------------------------------------- the loop
    def _step(self, batch: dict) -> dict:
        it = min(self.global_step, len(self.schedules["lr"]) - 1)
        lr, wd = float(self.schedules["lr"][it]), float(self.schedules["wd"][it])
        momentum = float(self.schedules["momentum"][it])
        teacher_temp = float(self.schedules["teacher_temp"][it])
        apply_schedules(self.optimizer, lr, wd)
        batch = {
            k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()
        }
        with autocast(self.device, self.cfg.train.precision):
            out = self.model.forward_loss(batch, teacher_temp)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        metrics = {k: v.detach() for k, v in out.items()}
        if self.cfg.optim.clip_grad > 0:
            metrics["grad_norm"] = clip_gradients(self.model.student, self.cfg.optim.clip_grad)
        cancel_last_layer_gradients(
            self.model.student.head, self.epoch, self.cfg.head.freeze_last_layer_epochs
        )
        self.optimizer.step()
        self.model.update_teacher(momentum)
        metrics.update(lr=lr, wd=wd, momentum=momentum, teacher_temp=teacher_temp, epoch=self.epoch)
        return metrics

    def _done(self) -> bool:
        max_steps = self.cfg.train.max_steps
        return self.epoch >= self.cfg.train.epochs or (0 < max_steps <= self.global_step)

    def fit(self) -> dict:
        """Train until `train.epochs` (or `train.max_steps`); returns a summary dict."""
        cfg = self.cfg.train
        if self._done():
            log.info(
                "run in %s is already finished (epoch %d of %d); raise train.epochs to "
                "train longer",
                self.run_dir,
                self.epoch,
                cfg.epochs,
            )
        self.model.train()
        t_start = time.perf_counter()
        while not self._done():
            self.sampler.set_epoch(self.epoch)
            self.sampler.set_start_batch(self.step_in_epoch)
            bar = tqdm(
                total=self.iters_per_epoch,
                initial=self.step_in_epoch,
                desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                unit="step",
                disable=not (self.is_main and cfg.progress),
                dynamic_ncols=True,
            )
            t_window, n_window = time.perf_counter(), 0
            for batch in self.loader:
                self._note_skipped(batch["skipped"])
                if batch["num_images"] > 0:
                    metrics = self._step(batch)
                    n_window += batch["num_images"] * self.world_size
                    self.logger.log_step(self.global_step, metrics)
                self.global_step += 1
                self.step_in_epoch += 1
                bar.update(1)
                if self.global_step % cfg.log_every_steps == 0:
                    row = self.logger.flush()
                    rate = n_window / max(time.perf_counter() - t_window, 1e-9)
                    t_window, n_window = time.perf_counter(), 0
                    bar.set_postfix(
                        loss=f"{row.get('loss', float('nan')):.3f}",
                        lr=f"{row.get('lr', 0):.2e}",
                        img_s=f"{rate:.1f}",
                    )
                every = cfg.checkpoint_every_steps
                if every > 0 and self.global_step % every == 0:
                    self.save()
                if self._done():
                    break
            bar.close()
            if self.step_in_epoch >= self.iters_per_epoch:
                self.epoch, self.step_in_epoch = self.epoch + 1, 0
                self._online_knn()
                if self.epoch % cfg.checkpoint_every_epochs == 0 and not self._done():
                    self.save()
        self.save()
        elapsed = time.perf_counter() - t_start
        return self._finish(elapsed)

    def _online_knn(self) -> None:
        """k-NN of the teacher (and student) on `eval.train/val`, every `eval.every_epochs`."""
        if self.online_knn is None or not self.online_knn.due(self.epoch):
            return
        self.logger.flush()
        scores = self.online_knn.run(self.model.teacher.backbone, self.model.student.backbone)
        self.logger.log_scalars(self.global_step, scores, prefix="knn")
        best = {k: v for k, v in scores.items() if k.endswith("_top1")}
        log.info("epoch %d online k-NN: %s", self.epoch, best)

    def _note_skipped(self, errors: list[str]) -> None:
        for err in errors:
            if len(self.skipped) < 1000:
                self.skipped.append(err)
            log.warning("skipped unreadable image %s", err)

    def _finish(self, elapsed: float) -> dict:
        summary = {
            "run_dir": str(self.run_dir),
            "epochs": self.epoch,
            "steps": self.global_step,
            "train_seconds_this_session": round(elapsed, 1),
            "skipped_images": len(self.skipped),
        }
        if self.is_main:
            self.logger.close()
            backbone = self.model.teacher.backbone
            summary["teacher_backbone"] = str(
                export_backbone(backbone, self.cfg, self.run_dir / "teacher_backbone.safetensors")
            )
            from dinolab.viz.curves import plot_training_curves

            metrics = self.run_dir / "metrics.jsonl"
            if metrics.is_file() and metrics.stat().st_size > 0:
                summary["curves"] = str(
                    plot_training_curves(
                        metrics, self.run_dir / "curves.png", self.cfg.head.out_dim
                    )
                )
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
