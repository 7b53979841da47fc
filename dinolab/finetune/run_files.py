"""The files of a fine-tuning run directory: names, the resume rule, each epoch's, the end's.

The run directory holds config.yaml (resolved), checkpoint.pth (atomic, every epoch: the
model, AdamW, the weight EMA, the step, the best score, every RNG state, the classifier's
spec), metrics.jsonl (a row every `log_every_steps` and one per epoch with val top-1 / top-5),
tensorboard/, confusion_matrix.png (the latest epoch's; every epoch's in TensorBoard),
curves.png, classifier_best.safetensors (kept when val top-1 improves), and at the end
classifier.safetensors (the best epoch's with keep_best, else the last; `dinolab predict`
reads it), summary.json and, with `onnx`, classifier.onnx.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from torch import nn

from dinolab.config.finetune import FinetuneConfig
from dinolab.finetune.classifier import ClassifierSpec, save_classifier
from dinolab.finetune.evaluate import plot_confusion, plot_finetune_curves
from dinolab.run_dir import CHECKPOINT, CURVES, METRICS, SUMMARY
from dinolab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint

log = logging.getLogger("dinolab")
BEST = "classifier_best.safetensors"
CLASSIFIER = "classifier.safetensors"
CONFUSION = "confusion_matrix.png"


def load_state(run_dir: Path, resume: bool) -> dict | None:
    """The checkpoint to continue from (resume), None for a new run; a new run never
    overwrites an old one."""
    path = run_dir / CHECKPOINT
    if resume:
        if not path.is_file():
            raise FileNotFoundError(
                f"'{run_dir}' has no {CHECKPOINT} to resume from: start a new run instead."
            )
        return load_checkpoint(path)
    if path.is_file():
        raise FileExistsError(
            f"'{run_dir}' already holds a fine-tuning run: pass --resume to continue it, or "
            "choose another out_dir."
        )
    return None


def save_state(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: nn.Module | None,
    step: int,
    epoch: int,
    best: dict,
    spec: ClassifierSpec,
    last: dict | None,
) -> None:
    """checkpoint.pth after `epoch` epochs (atomic): everything resuming needs, RNGs included."""
    save_checkpoint(
        run_dir / CHECKPOINT,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "step": step,
            "epoch": epoch,
            "best": best,
            "rng": rng_state(),
            "spec": spec.__dict__,
            "last": last,
        },
    )


def tensorboard(cfg: FinetuneConfig, run_dir: Path, step: int):
    """A TensorBoardLogger (train.loggers' own) or None when off or not installed."""
    from dinolab.extras import available

    if not cfg.tensorboard or not available("torch.utils.tensorboard"):
        return None
    from dinolab.train.loggers import TensorBoardLogger

    run_dir.mkdir(parents=True, exist_ok=True)
    return TensorBoardLogger(cfg, run_dir, step)


def epoch_outputs(cfg, run_dir, spec, model, ema, scores, epoch, step, rows, tb) -> None:
    """metrics.jsonl rows, the log line, the confusion matrix and TensorBoard of one epoch."""
    val_row = {
        "step": step,
        "epoch": epoch + 1,
        "val/top1": scores["top1"],
        "val/top5": scores["top5"],
        "val/loss": scores["loss"],
    }
    rows = [*rows, val_row]
    with open(run_dir / METRICS, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    log.info(
        "epoch %d/%d: val top-1 %.2f%%, top-5 %.2f%%, loss %.4f%s",
        epoch + 1,
        cfg.epochs,
        scores["top1"],
        scores["top5"],
        scores["loss"],
        " (EMA weights)" if ema is not None else "",
    )
    title = f"epoch {epoch + 1}: val top-1 {scores['top1']:.1f}%"
    plot_confusion(scores["confusion"], spec.classes, run_dir / CONFUSION, title)
    if tb is not None:
        tb.log_metrics([{k: v for k, v in r.items() if k != "epoch"} for r in rows])
        tb.log_image("val/confusion_matrix", run_dir / CONFUSION, step)


def finish(cfg, run_dir, spec, model, ema, best, last, done) -> dict:
    """The exports and summary.json at the end of the run (or of this session)."""
    final = run_dir / CLASSIFIER
    if done:
        if cfg.keep_best and (run_dir / BEST).is_file():
            shutil.copyfile(run_dir / BEST, final)
        else:
            save_classifier(ema or model, spec, final)
    plot_finetune_curves(run_dir / METRICS, run_dir / CURVES)
    summary = {
        "epochs": (last or {}).get("epoch", 0),
        "finished": done,
        "best": best,
        "last": last,
        "classes": spec.classes,
        "classifier": str(final) if done else None,
    }
    if done and cfg.onnx:
        from dinolab.finetune.onnx import export_classifier_onnx

        summary["onnx"] = str(export_classifier_onnx(final, run_dir / "classifier.onnx"))
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
