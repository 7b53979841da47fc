"""train.loggers: TensorBoard, W&B (offline) and MLflow (file store) across a resume."""

from __future__ import annotations

import json

import pytest

from dinolab.extras import MissingExtraError
from dinolab.train.loggers import check_loggers, flat_hparams
from dinolab.train.monitor import MetricsLogger
from dinolab.train.pretrain import pretrain

from .conftest import tiny_config

pytest.importorskip("torch.utils.tensorboard")


def _config(image_dir, run, **overrides):
    return tiny_config(image_dir, run, **{"train.tensorboard": True, **overrides})


def _tensorboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    return acc.Reload()


def test_tensorboard_is_one_stream_across_a_resume(image_dir, tmp_path):
    # 24 images / batch 8 = 3 steps an epoch; the first session stops at step 3 (a checkpoint)
    run = tmp_path / "run"
    pretrain(_config(image_dir, run, **{"train.max_steps": 3, "viz.every_epochs": 1}))
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run / "tensorboard")) as dead:  # a session killed after its save
        for step in (3, 4):
            dead.add_scalar("train/loss", 99.0, step)
    pretrain(_config(image_dir, run, **{"viz.every_epochs": 1}), resume=True)  # to step 6
    tb = _tensorboard(run)
    losses = tb.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(6))
    assert 99.0 not in [e.value for e in losses]  # the dead session's steps are purged
    rows = {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").open())
            if "loss" in r}  # fmt: skip
    assert [e.value for e in losses] == pytest.approx([rows[s] for s in range(6)], rel=1e-6)
    tags = tb.Tags()
    assert {"curves", "attention"} <= set(tags["images"])
    assert "config/text_summary" in tags["tensors"]
    hparams = tb.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams and "_hparams_/experiment" in hparams


def test_wandb_offline_and_mlflow_file_store_keep_one_run_across_a_resume(
    image_dir, tmp_path, monkeypatch
):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    loggers = {"train.loggers": "[wandb,mlflow]", "train.tensorboard": False}
    pretrain(_config(image_dir, run, **loggers, **{"train.max_steps": 3}))
    ids = json.loads((run / "loggers.json").read_text())
    pretrain(_config(image_dir, run, **loggers), resume=True)
    assert json.loads((run / "loggers.json").read_text()) == ids  # the same runs continued

    offline = sorted((run / "wandb").glob(f"offline-run-*-{ids['wandb']}"))
    assert len(offline) == 2  # one per session, one W&B run id (`wandb sync` joins them)
    assert all((d / f"run-{ids['wandb']}.wandb").stat().st_size > 0 for d in offline)
    assert list((offline[-1] / "files" / "media" / "images").glob("curves_*.png"))

    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    history = client.get_metric_history(ids["mlflow"], "train/loss")
    assert sorted(m.step for m in history) == list(range(6))
    got = client.get_run(ids["mlflow"])
    assert got.data.params["optim.base_lr"] == "0.002" and got.info.status == "FINISHED"
    pictures = [a.path for a in client.list_artifacts(ids["mlflow"], "pictures/curves")]
    assert pictures == ["pictures/curves/curves.png"]


def test_unknown_or_missing_logger_fails_before_anything_is_written(image_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="unknown logger 'neptune'; use any of tensorboard"):
        pretrain(_config(image_dir, run, **{"train.loggers": "[neptune]"}))
    assert not run.exists()


def test_a_missing_wandb_names_its_extra(image_dir, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'dinolab\[wandb\]'"):
        check_loggers(_config(image_dir, tmp_path / "run", **{"train.loggers": "[wandb]"}))


class _Broken:
    def __init__(self):
        self.calls = 0

    def log_metrics(self, rows):
        self.calls += 1
        raise ConnectionError("service down")


def test_a_failing_logger_is_dropped_and_metrics_go_on(tmp_path, caplog):
    broken = _Broken()
    logger = MetricsLogger(tmp_path, loggers=[broken])
    logger.log_step(0, {"loss": 1.0})
    logger.flush()
    logger.log_step(1, {"loss": 0.5})
    logger.flush()
    assert broken.calls == 1 and "_Broken logger failed (service down): dropped" in caplog.text
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2


def test_hparams_are_flat_scalars(image_dir, tmp_path):
    params = flat_hparams(_config(image_dir, tmp_path / "run"))
    assert params["optim.base_lr"] == 0.002 and params["train.loggers"] == "['tensorboard']"
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
