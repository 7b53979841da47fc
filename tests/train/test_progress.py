"""The run's progress bar: the whole run's steps, the loss from step 1, images/s, the epoch."""

import torch

from dinolab.train.pretrain import pretrain
from dinolab.train.progress import RunProgress

from .conftest import tiny_config


def test_the_first_update_shows_the_loss_the_rate_and_the_runs_total(capsys):
    with RunProgress(total=12, done=0, enabled=True, desc="epoch 1/4") as bar:
        bar.update({"loss": torch.tensor(1.5), "lr": 2e-3}, images=16)
        shown = capsys.readouterr().err
        bar.set_total(20)  # a time budget's re-plan
        bar.set_epoch(2, None)
        bar.update(None, images=0)  # a skipped step counts, shows nothing new
    last = capsys.readouterr().err.split("\r")[-1]
    assert "epoch 1/4" in shown and "1/12" in shown
    assert "loss=1.500" in shown and "lr=2.00e-03" in shown and "img_s=" in shown
    assert "epoch 2:" in last and "2/20" in last


def test_a_training_bar_counts_the_whole_run_and_shows_the_loss_from_step_one(
    image_dir, tmp_path, capsys
):
    over = {"train.progress": True, "train.log_every_steps": 10}  # metrics flushed at the end
    pretrain(tiny_config(image_dir, tmp_path / "run", **over))  # 2 epochs x 3 steps
    frames = [f for f in capsys.readouterr().err.split("\r") if "step" in f]
    first = next(f for f in frames if " 1/6 " in f)
    assert "epoch 1/2" in first and "loss=" in first and "img_s=" in first
    assert any("epoch 2/2" in f and "6/6" in f for f in frames)
    assert not any("/3 " in f for f in frames)  # no per-epoch bar any more
