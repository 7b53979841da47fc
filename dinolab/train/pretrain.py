"""`dinolab pretrain`: a whole run, from config to exported teacher, curves and k-NN."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dinolab.config.schema import Config
from dinolab.train.trainer import CHECKPOINT, Trainer

log = logging.getLogger("dinolab")


def pretrain(cfg: Config, resume: bool = False) -> dict:
    """Train (or continue) the run in `cfg.out_dir`; returns the run's summary."""
    run_dir = Path(cfg.out_dir)
    if not resume and (run_dir / CHECKPOINT).is_file():
        raise FileExistsError(
            f"Run directory '{run_dir}' already holds a checkpoint: continue it with "
            f"`dinolab pretrain --resume {run_dir}` or choose another out_dir=..."
        )
    if not cfg.data.path:
        raise ValueError(
            "No training images given: pass a folder (dinolab pretrain PATH) or set data.path=..."
        )
    trainer = Trainer(cfg, resume=resume)
    summary = trainer.fit()
    if cfg.eval.train and cfg.eval.val and trainer.is_main:
        summary["knn"] = evaluate_run_knn(trainer, cfg)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_run_knn(trainer: Trainer, cfg: Config) -> dict:
    """k-NN of the teacher on `eval.train` / `eval.val`, logged and drawn on the curves."""
    from dinolab.eval.knn import run_knn
    from dinolab.viz.curves import plot_training_curves

    result = run_knn(
        trainer.model.teacher.backbone,
        cfg.eval.train,
        cfg.eval.val,
        image_size=cfg.eval.image_size or cfg.data.global_size,
        ks=cfg.eval.k,
        temperature=cfg.eval.temperature,
        out_dir=cfg.out_dir,
        batch_size=cfg.eval.batch_size,
        device=trainer.device,
        precision=cfg.train.precision,
        mean=tuple(cfg.data.mean),
        std=tuple(cfg.data.std),
        num_workers=min(cfg.data.num_workers, 2),
        progress=cfg.train.progress,
    )
    top1 = {f"teacher_k{k}_top1": s["top1"] for k, s in result["scores"].items()}
    trainer.logger.enabled = True
    trainer.logger.log_scalars(trainer.global_step, top1, prefix="knn")
    plot_training_curves(
        trainer.run_dir / "metrics.jsonl", trainer.run_dir / "curves.png", cfg.head.out_dim
    )
    return result
