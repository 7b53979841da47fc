"""Where a run's numbers and pictures go besides `metrics.jsonl`: `train.loggers`.

  tensorboard  RUN/tensorboard/: one event stream across resumes (steps the resumed run
               repeats are purged), the config as hparams + text, curves and attention images
  wandb        RUN/wandb/, one W&B run across resumes (its id is kept in RUN/loggers.json);
               offline when WANDB_MODE=offline or no API key is set (`wandb sync` later)
  mlflow       MLFLOW_TRACKING_URI, else a file store in RUN/mlruns (`mlflow ui
               --backend-store-uri RUN/mlruns`); one MLflow run across resumes

Each logger has the same four calls (`log_metrics`, `log_hparams`, `log_image`, `close`); the
trainer only calls `open_loggers` and the `MetricsLogger` that fans rows out to them. A missing
tensorboard skips that logger with a note; a missing wandb / mlflow is an error before anything
is written. `train.log` (the `dinolab` logger's messages and a line of numbers every
`train.log_every_steps`) is kept by `train.text_log`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from dinolab.config.loader import to_yaml
from dinolab.config.schema import Config
from dinolab.extras import available, require
from dinolab.run_dir import LOGGER_IDS, TENSORBOARD
from dinolab.train.text_log import StepLines

log = logging.getLogger("dinolab")
LOGGERS = ("tensorboard", "wandb", "mlflow")
__all__ = [
    "LOGGERS",
    "RunLogger",
    "check_loggers",
    "open_loggers",
]


class RunLogger(Protocol):
    """What the trainer calls on every logger (rank 0 only)."""

    def log_metrics(self, rows: list[dict[str, float]]) -> None:
        """Rows of {"step": int, "train/loss": float, ...}, in step order."""

    def log_hparams(self, params: dict[str, Any]) -> None: ...

    def log_image(self, tag: str, path: Path, step: int) -> None: ...

    def close(self) -> None: ...


def wanted_loggers(cfg: Config) -> list[str]:
    """train.loggers, less tensorboard when the older switch train.tensorboard is false."""
    names = [str(n).lower() for n in cfg.train.loggers]
    return [n for n in names if n != "tensorboard" or cfg.train.tensorboard]


def check_loggers(cfg: Config) -> None:
    """Refuse an unknown logger or a missing wandb / mlflow before the run writes anything."""
    for name in wanted_loggers(cfg):
        if name not in LOGGERS:
            raise ValueError(
                f"train.loggers: unknown logger '{name}'; use any of {', '.join(LOGGERS)}."
            )
        if name in ("wandb", "mlflow"):
            require(name, name, f"train.loggers={name}")


def open_loggers(cfg: Config, run_dir: Path, step: int) -> list[RunLogger]:
    """The loggers of `cfg` for the run in `run_dir` that continues at `step` (0: a new run)."""
    loggers: list[RunLogger] = [StepLines()]
    params = flat_hparams(cfg)
    for name in wanted_loggers(cfg):
        if name == "tensorboard" and not available("torch.utils.tensorboard"):
            log.info("TensorBoard logs off: pip install 'dinolab[tensorboard]' to write them")
            continue
        logger = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger, "mlflow": MlflowLogger}[
            name
        ](cfg, run_dir, step)
        if step == 0:
            logger.log_hparams(params)
        loggers.append(logger)
    return loggers


def flat_hparams(cfg: Config) -> dict[str, Any]:
    """{"optim.base_lr": 0.0005, ...}: every config key; lists and None as text."""
    flat: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[prefix + k] = v if isinstance(v, (bool, int, float, str)) else str(v)

    walk(asdict(cfg), "")
    return flat


def _run_ids(run_dir: Path) -> dict[str, str]:
    path = run_dir / LOGGER_IDS
    return json.loads(path.read_text()) if path.is_file() else {}


def _keep_run_id(run_dir: Path, name: str, run_id: str) -> None:
    ids = _run_ids(run_dir)
    ids[name] = run_id
    (run_dir / LOGGER_IDS).write_text(json.dumps(ids, indent=2) + "\n")


def _read_image(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class TensorBoardLogger:
    """RUN/tensorboard: scalars, the config (hparams + text) and pictures in one stream."""

    def __init__(self, cfg: Config, run_dir: Path, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events at or after `step` left by the session that died are dropped, so
        # TensorBoard shows one continuous curve, as metrics.jsonl does after trim_metrics
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD), purge_step=step)
        if step == 0:
            self.writer.add_text("config", "```\n" + to_yaml(cfg) + "\n```", 0)

    def log_metrics(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            for k, v in row.items():
                if k != "step":
                    self.writer.add_scalar(k, v, row["step"])

    def log_hparams(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        # written into this same stream (add_hparams would open a second run directory)
        for summary in hparams(params, {"train/loss": 0.0, "knn/teacher_k20_top1": 0.0}):
            self.writer.file_writer.add_summary(summary)

    def log_image(self, tag: str, path: Path, step: int) -> None:
        self.writer.add_image(tag, _read_image(path), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run in RUN/wandb, resumed by the id kept in RUN/loggers.json."""

    def __init__(self, cfg: Config, run_dir: Path, step: int) -> None:
        wandb = require("wandb", "wandb", "train.loggers=wandb")
        self.wandb = wandb
        run_id = _run_ids(run_dir).get("wandb") or uuid.uuid4().hex[:12]
        _keep_run_id(run_dir, "wandb", run_id)
        mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_key(wandb) else "offline")
        if mode == "offline":
            log.info(
                "W&B offline (no API key or WANDB_MODE=offline): `wandb sync %s/wandb`", run_dir
            )
        self.run = wandb.init(
            project=cfg.train.project,
            name=run_dir.name,
            dir=str(run_dir),
            id=run_id,
            resume="allow",
            mode=mode,
            settings=wandb.Settings(console="off", silent=True),
        )

    def log_metrics(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            self.run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_image(self, tag: str, path: Path, step: int) -> None:
        self.run.log({tag: self.wandb.Image(str(path))}, step=step)

    def close(self) -> None:
        self.run.finish()


def _wandb_key(wandb) -> bool:
    """Whether W&B has an API key (env or `wandb login`), without ever prompting for one."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return bool(wandb.Api(timeout=1).api_key)
    except Exception:  # no key, no network or an API change: offline is the safe answer
        return False


class MlflowLogger:
    """An MLflow run in experiment `train.project`, resumed by its id in RUN/loggers.json."""

    def __init__(self, cfg: Config, run_dir: Path, step: int) -> None:
        mlflow = require("mlflow", "mlflow", "train.loggers=mlflow")
        from mlflow.entities import Metric, Param

        self.Metric, self.Param = Metric, Param
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a local file store: MLflow 3 wants this opt-in for file stores
            uri = (run_dir.resolve() / "mlruns").as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        run_id = _run_ids(run_dir).get("mlflow")
        if run_id is None:
            exp = self.client.get_experiment_by_name(cfg.train.project)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(cfg.train.project)
            run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
            _keep_run_id(run_dir, "mlflow", run_id)
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log_metrics(self, rows: list[dict[str, float]]) -> None:
        now = int(time.time() * 1000)
        metrics = [
            self.Metric(k, v, now, row["step"])
            for row in rows
            for k, v in row.items()
            if k != "step"
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def log_hparams(self, params: dict[str, Any]) -> None:
        items = [self.Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit for params
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_image(self, tag: str, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=f"pictures/{tag}")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
