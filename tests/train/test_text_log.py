"""train.text_log: RUN/train.log holds every session's messages and numbers."""

from __future__ import annotations

import logging

from dinolab.train.pretrain import pretrain
from dinolab.train.text_log import attach_text_log, detach_text_log

from .conftest import tiny_config


def _config(image_dir, run, **overrides):
    return tiny_config(image_dir, run, **overrides)


def test_train_log_holds_every_session(image_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dinolab")  # as the CLI configures it
    run = tmp_path / "run"
    pretrain(_config(image_dir, run, **{"train.max_steps": 3, "train.tensorboard": False}))
    pretrain(_config(image_dir, run, **{"train.tensorboard": False}), resume=True)
    text = (run / "train.log").read_text()
    assert text.count("INFO precision fp32") == 2  # the resolved precision, once per session
    assert "step 5: train/loss" in text and "step 2: train/loss" in text  # numbers, every step
    assert all(line[:4].isdigit() for line in text.splitlines() if line)  # timestamped


def test_a_program_without_logging_config_gets_info_in_the_file_warnings_on_screen(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    log = logging.getLogger("dinolab")
    level = log.level
    attach_text_log(tmp_path)
    log.info("a note")
    log.warning("a warning")
    detach_text_log()
    assert capsys.readouterr().err == "a warning\n"
    text = (tmp_path / "train.log").read_text()
    assert "INFO a note" in text and "WARNING a warning" in text
    assert log.level == level and not log.handlers
