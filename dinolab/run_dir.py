"""Everything a run directory holds: its file names, atomic checkpoints, metrics rows, the
exported teacher backbone and the loader that gives that teacher back.

A run directory (`out_dir`) holds:
  config.yaml                    the resolved config (rebuilds the model for evaluation)
  checkpoint.pth                 the latest checkpoint (atomic; `checkpoint_NNNN.pth` snapshots)
  teacher_backbone.safetensors   the teacher backbone (`dinolab.models.weights` format)
  metrics.jsonl                  one JSON row per step (and k-NN rows)
  train.log                      every log message of the run, with times (all sessions)
  tensorboard/, wandb/, mlruns/  what the loggers of `train.loggers` write; loggers.json keeps
                                 the W&B / MLflow run ids so a resumed run logs to the same run
  summary.json, curves.png, viz/ the end-of-run summary, curves and attention pictures

Ground floor: imports models/ and config/, never train/, eval/, viz/ or cli.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dinolab.config.loader import load_saved_config
from dinolab.config.schema import Config, ModelConfig
from dinolab.models.convert import sub_state
from dinolab.models.preprocessing import Preprocessing, set_preprocessing
from dinolab.models.weights import (
    build_inference_backbone,
    load_backbone,
    load_state_dict_strict,
    read_weights,
    save_backbone,
)

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pth"
TEACHER_FILE = "teacher_backbone.safetensors"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"
TEXT_LOG = "train.log"
LOGGER_IDS = "loggers.json"
VIZ = "viz"
_SNAPSHOT = re.compile(r"checkpoint_(\d+)\.pth")


def snapshot_name(epoch: int) -> str:
    """The numbered snapshot of `epoch` kept besides checkpoint.pth (train.keep_checkpoints)."""
    return f"checkpoint_{epoch:04d}.pth"


def snapshots(run_dir: Path) -> list[Path]:
    """The numbered snapshots `checkpoint_NNNN.pth` (train.keep_checkpoints), newest first."""
    found = [(_SNAPSHOT.fullmatch(p.name), p) for p in run_dir.glob("checkpoint_*.pth")]
    return [p for m, p in sorted(((int(m[1]), p) for m, p in found if m), reverse=True)]


def has_checkpoint(run_dir: Path) -> bool:
    """Whether `run_dir` holds anything to resume from (checkpoint.pth or a snapshot)."""
    return (run_dir / CHECKPOINT).is_file() or bool(snapshots(run_dir))


# ---------------------------------------------------------------- checkpoints


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, lost mount, ...); the message says what
    survived and how to go on."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint saved by `save_checkpoint` (tensors and plain Python types only)."""
    state, _ = read_weights(
        path,
        what="checkpoint",
        kind="dinolab checkpoint",
        missing_hint="check the path, or pass a run directory to --resume.",
        map_location=map_location,
    )
    return state


def find_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint to resume a run from: `run_dir/checkpoint.pth`."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"Run directory '{run_dir}' has no {CHECKPOINT} to resume from: start a new "
            "run or point --resume at a run directory."
        )
    return path


# ---------------------------------------------------------------- metrics rows


def read_metrics(path: str | Path) -> list[dict]:
    """All rows of a metrics.jsonl file (a half-written last line is ignored)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def trim_metrics(path: str | Path, step: int) -> None:
    """Drop the rows a run resumed at `step` logs again: training steps from `step` on, other
    rows (k-NN, logged after the step that ends an epoch) after `step`."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the half-written last line of a killed run
            continue
        if row.get("step", 0) < step or (row.get("step") == step and "loss" not in row):
            kept.append(line)
    if len(kept) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)


# ---------------------------------------------------------------- the teacher


def export_teacher(backbone: nn.Module, cfg: Config, run_dir: str | Path) -> Path:
    """Write the run's teacher backbone (weights, model config, position-embedding rule)."""
    return save_backbone(backbone, cfg, Path(run_dir) / TEACHER_FILE)


def load_run_backbone(run: str | Path) -> tuple[nn.Module, Config]:
    """The eval-mode teacher backbone of a run directory (its export, else its checkpoint)
    and the run's config; `run` may also be an exported `.safetensors` file. The backbone
    carries the run's preprocessing (`backbone.preprocessing`: normalisation, image size)."""
    run = Path(run)
    if run.is_file() and run.suffix == ".safetensors":
        cfg_path = run.parent / CONFIG
        backbone = load_backbone(run)
        if not cfg_path.is_file():
            return backbone, Config()
        cfg = load_saved_config(cfg_path)
        if getattr(backbone, "preprocessing", None) is None:  # a file older than the record
            set_preprocessing(backbone, Preprocessing.from_config(cfg))
        return backbone, cfg
    if not run.is_dir():
        raise FileNotFoundError(f"Run directory '{run}' does not exist.")
    cfg = load_saved_config(run / CONFIG)
    if (run / TEACHER_FILE).is_file():
        backbone = load_backbone(run / TEACHER_FILE)
        return set_preprocessing(backbone, Preprocessing.from_config(cfg)), cfg
    ckpt = run / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"Run directory '{run}' has no teacher (neither {TEACHER_FILE} nor {CHECKPOINT}): "
            "train it first with `dinolab pretrain`."
        )
    prefix = "teacher.backbone."
    state = sub_state(load_checkpoint(ckpt)["model"], prefix)
    model_cfg = ModelConfig(**asdict(cfg.model))
    backbone = build_inference_backbone(model_cfg)  # the rule the run trained with
    load_state_dict_strict(backbone, state, f"the {model_cfg.arch} backbone")
    return set_preprocessing(backbone.eval(), Preprocessing.from_config(cfg)), cfg
