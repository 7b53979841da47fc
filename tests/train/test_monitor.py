import json

import pytest
import torch

from dinolab.train.monitor import MetricsLogger, NonFiniteLossError, read_metrics


def test_every_step_gets_a_row(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(5):
        logger.log_step(step, {"loss": torch.tensor(1.0 + step), "lr": 0.1 * step})
    last = logger.flush()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(5))
    assert rows[3]["loss"] == 4.0 and rows[3]["lr"] == pytest.approx(0.3)
    assert last == rows[-1]


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log_step(0, {"loss": torch.tensor(1.0)})
    logger.log_step(1, {"loss": torch.tensor(float("nan"))})
    with pytest.raises(NonFiniteLossError, match="step 1.*last good checkpoint"):
        logger.flush()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0]


def test_half_written_line_is_ignored(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "lo')
    assert read_metrics(path) == [{"step": 0, "loss": 1.0}]
