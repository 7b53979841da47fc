"""SIGINT / SIGTERM: finish the step, save, stop with the resume command; a grace period."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.interrupt import StopSignal, TrainingInterrupted, ignore_stop_signals
from dinolab.train.trainer import Trainer

from .conftest import stop_after, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_a_signal_is_noted_not_raised_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignal(grace_s=0) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert stop.signum == signal.SIGTERM
        assert stop.gather(8) == ([8], signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_ctrl_c_stops_at_once():
    with StopSignal(grace_s=0) as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)


def test_data_workers_leave_the_signals_to_the_training_process():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        ignore_stop_signals(0)
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in saved)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_a_step_that_does_not_end_within_the_grace_period_exits_unsaved():
    code = (
        "import time\n"
        "from dinolab.train.interrupt import StopSignal\n"
        "with StopSignal(grace_s=0.3) as stop:\n"
        "    stop.request()\n"
        "    time.sleep(30)\n"
    )
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 128 + signal.SIGTERM and time.perf_counter() - t0 < 25
    assert "no step finished within train.stop_grace_s=0.3 s of SIGTERM" in run.stderr


def test_a_stop_saves_the_step_it_stopped_at_and_names_the_resume_command(image_dir, tmp_path):
    run, before = tmp_path / "run", signal.getsignal(signal.SIGTERM)
    trainer = Trainer(tiny_config(image_dir, run))
    with stop_after(2), pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    assert stopped.value.step == 2 and stopped.value.exit_code == 143
    assert f"resume with `dinolab pretrain --resume {run}`" in str(stopped.value)
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 2
    assert signal.getsignal(signal.SIGTERM) is before  # handlers given back
