"""`dinolab pretrain`: a whole run, from config to exported teacher, curves and k-NN."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import numpy as np

from dinolab.config.loader import save_config
from dinolab.config.schema import Config
from dinolab.config.validate import validate_config
from dinolab.run_dir import CONFIG, CURVES, METRICS, SUMMARY, has_checkpoint
from dinolab.train.run_checkpoint import remove_partial_writes
from dinolab.train.schedules import build_schedules
from dinolab.train.text_log import detach_text_log
from dinolab.train.trainer import Trainer

log = logging.getLogger("dinolab")


def pretrain(cfg: Config, resume: bool = False) -> dict:
    """Train (or continue) the run in `cfg.out_dir`; returns the run's summary.

    `resume=True` continues from the run's newest good checkpoint, or starts the run from step
    0 when it has none (killed before its first save): re-issuing it after a kill is always right.
    """
    validate_config(cfg)  # before the model is built and anything is written
    run_dir = Path(cfg.out_dir)
    started = has_checkpoint(run_dir)
    if not resume and started:
        raise FileExistsError(
            f"Run directory '{run_dir}' already holds a checkpoint: continue it with "
            f"`dinolab pretrain --resume {run_dir}` or choose another out_dir=..."
        )
    if not cfg.data.path:
        raise ValueError(
            "No training images given: pass a folder (dinolab pretrain PATH) or set data.path=..."
        )
    if resume and not started:
        log.info("run directory %s has no checkpoint yet: starting the run from step 0", run_dir)
        (run_dir / METRICS).unlink(missing_ok=True)  # rows of the attempt that died
        remove_partial_writes(run_dir)
    trainer = None
    try:  # the loggers stay open for the end-of-run k-NN; closed whatever happens
        trainer = Trainer(cfg, resume=resume and started)
        summary = trainer.fit()
        if cfg.highres.iterations > 0 and trainer.epoch >= cfg.train.epochs:
            trainer.close()
            trainer = None  # free the low-resolution loader and model before the final phase
            trainer = highres_trainer(cfg)
            summary = trainer.fit()
        if cfg.eval.train and cfg.eval.val and trainer.is_main:
            summary["knn"] = evaluate_run_knn(trainer, cfg)
            (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
    finally:
        if trainer is not None:
            trainer.close()
        detach_text_log()
    return summary


def evaluate_run_knn(trainer: Trainer, cfg: Config) -> dict:
    """k-NN of the teacher on `eval.train` / `eval.val`, logged and drawn on the curves."""
    from dinolab.eval.knn import run_knn
    from dinolab.viz.curves import plot_training_curves

    result = run_knn(
        trainer.final_teacher or trainer.model.teacher.backbone,
        cfg.eval.train,
        cfg.eval.val,
        image_size=cfg.eval.image_size,
        resize_ratio=cfg.eval.resize_ratio,
        ks=cfg.eval.k,
        temperature=cfg.eval.temperature,
        out_dir=cfg.out_dir,
        batch_size=cfg.eval.batch_size,
        device=trainer.device,
        precision=trainer.precision,
        mean=tuple(cfg.data.mean),
        std=tuple(cfg.data.std),
        num_workers=min(trainer.threads.num_workers, 2),
        progress=cfg.train.progress,
    )
    top1 = {f"teacher_k{k}_top1": s["top1"] for k, s in result["scores"].items()}
    trainer.logger.enabled = True
    trainer.logger.log_scalars(trainer.global_step, top1, prefix="knn")
    plot_training_curves(trainer.run_dir / METRICS, trainer.run_dir / CURVES, cfg.head.out_dim)
    trainer.logger.log_image("curves", trainer.run_dir / CURVES, trainer.global_step)
    return result


def highres_config(cfg: Config, iters_per_epoch: int) -> Config:
    """The run's config for its high-resolution phase: larger crops, K more steps."""
    hr = copy.deepcopy(cfg)
    h = cfg.highres
    if h.global_size % cfg.model.patch_size:
        raise ValueError(
            f"highres.global_size={h.global_size} is not a multiple of the patch size "
            f"{cfg.model.patch_size}; choose e.g. {cfg.model.patch_size * 37}."
        )
    hr.data.global_size = h.global_size
    hr.data.local_size = h.local_size
    main_steps = cfg.train.epochs * iters_per_epoch
    hr.train.epochs = cfg.train.epochs + math.ceil(h.iterations / iters_per_epoch)
    hr.train.max_steps = main_steps + h.iterations
    return hr


def highres_trainer(cfg: Config) -> Trainer:
    """A Trainer that continues the finished run in cfg.out_dir at `highres.global_size`.

    DINOv2's final adaptation to high resolution: model, teacher, optimizer, RNG and step come
    from the run's checkpoint (so a run killed during the phase resumes exactly too); position
    embeddings are interpolated to the larger grid on the fly. The lr is held at `highres.lr`
    (or the main schedule's last value) and wd, teacher momentum and temperature stay at their
    final values for the K = `highres.iterations` steps. The run's config.yaml stays the
    original one, whose `highres` keys describe this phase.
    """
    trainer = Trainer(highres_config(cfg, 1), resume=True)  # step counts fixed below
    ipe = trainer.iters_per_epoch  # the main run's: same dataset, same batch
    hr = highres_config(cfg, ipe)
    trainer.cfg = hr
    trainer.schedules = highres_schedules(cfg, ipe, trainer.global_batch)
    if trainer.is_main:
        save_config(cfg, trainer.run_dir / CONFIG)
    log.info(
        "high-resolution phase: %d steps at %d px", cfg.highres.iterations, hr.data.global_size
    )
    return trainer


def highres_schedules(cfg: Config, iters_per_epoch: int, global_batch: int) -> dict:
    """The main run's schedules followed by K steps at a fixed lr and the final values."""
    main = build_schedules(cfg, iters_per_epoch, global_batch)
    k = cfg.highres.iterations
    tail = {key: np.full(k, values[-1]) for key, values in main.items()}
    if cfg.highres.lr > 0:
        tail["lr"][:] = cfg.highres.lr
    return {key: np.concatenate([main[key], tail[key]]) for key in main}
