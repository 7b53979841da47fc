"""Resuming is idempotent: no checkpoint yet, `--resume auto`, a truncated checkpoint, a full disk.

Every run here is the tiny 2-epoch x 3-step config of conftest; each interrupted and resumed
run must end with weights bit-identical to the one that ran straight through.
"""

import errno
import logging
import shutil

import pytest
import torch

from dinolab.cli import main
from dinolab.train import checkpoint as ckpt
from dinolab.train.checkpoint import CheckpointWriteError, load_checkpoint
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.monitor import read_metrics, trim_metrics
from dinolab.train.pretrain import pretrain
from dinolab.train.trainer import Trainer

from .conftest import make_images, stop_after, tiny_config, tiny_overrides


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("resume") / "images")


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The final weights of the uninterrupted run."""
    run = tmp_path_factory.mktemp("straight") / "run"
    pretrain(tiny_config(data, run))
    return load_checkpoint(run / "checkpoint.pth")["model"]


def _assert_same_weights(run, expected):
    state = load_checkpoint(run / "checkpoint.pth")
    assert state["global_step"] == 6
    assert state["model"].keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(state["model"][k], v), k


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("dinolab: error: ") and "\n" not in err, err
    return err


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it(
    data, straight, tmp_path, caplog
):
    run = tmp_path / "run"
    Trainer(tiny_config(data, run))  # what a kill during the first steps leaves: config.yaml...
    (run / "metrics.jsonl").write_text('{"step": 0, "loss": 9.0}\n{"step": 1, "lo')  # ...rows
    (run / "checkpoint.pth.tmp-4242").write_bytes(b"half")  # ...and a first save cut short
    assert (run / "config.yaml").is_file() and not (run / "checkpoint.pth").exists()

    with caplog.at_level(logging.INFO, logger="dinolab"):
        assert main(["pretrain", "--resume", str(run)]) == 0
    assert "has no checkpoint yet: starting the run from step 0" in caplog.text
    assert not (run / "checkpoint.pth.tmp-4242").exists()
    _assert_same_weights(run, straight)
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(6))  # the dead attempt's rows are gone, none is doubled


def test_resume_auto_starts_then_continues_and_refuses_another_config(
    data, straight, tmp_path, capsys, caplog
):
    run = tmp_path / "run"
    command = ["pretrain", str(data), *tiny_overrides(data, run), "--resume", "auto"]
    with caplog.at_level(logging.INFO, logger="dinolab"):
        with stop_after(4):  # a new run, stopped mid-epoch 2 by a SIGTERM
            assert main(command) == 143
    assert "stopped by SIGTERM at step 4: checkpoint saved" in capsys.readouterr().err
    assert "starting a new run in" in caplog.text
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 4

    err_cases = {  # changed keys are named, keys that may change (max_steps) are not
        "optim.base_lr=0.01": "optim.base_lr: 0.002 in the run, 0.01 now",
        "model.depth=3": "model.depth: 2 in the run, 3 now",
    }
    for override, named in err_cases.items():
        assert main([*command, override, "train.max_steps=0"]) == 2
        err = _one_line_error(capsys)
        assert f"holds a run with another config ({named}):" in err
        assert "max_steps" not in err and "--resume " in err
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 4  # refused: untouched

    assert main(command) == 0  # the same command again: continues to the end
    _assert_same_weights(run, straight)
    assert main(command) == 0  # and once more: the run is finished, nothing changes
    _assert_same_weights(run, straight)


def test_truncated_checkpoint_falls_back_to_the_newest_good_snapshot(
    data, straight, tmp_path, caplog
):
    run = tmp_path / "run"
    keep = {"train.keep_checkpoints": 2}
    with stop_after(4), pytest.raises(TrainingInterrupted):
        pretrain(tiny_config(data, run, **keep))
    snapshot = run / "checkpoint_0001.pth"  # end of epoch 1 = step 3
    assert load_checkpoint(snapshot)["global_step"] == 3
    latest = run / "checkpoint.pth"
    latest.write_bytes(latest.read_bytes()[:5000])  # an interrupted copy
    (run / "checkpoint.pth.tmp-4242").write_bytes(b"half")  # a save killed mid-write

    with caplog.at_level(logging.WARNING, logger="dinolab"):
        trainer = Trainer(tiny_config(data, run, **keep), resume=True)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == [
        f"'{latest}' is truncated or unreadable: resuming from the snapshot '{snapshot}' instead"
    ]
    assert trainer.global_step == 3
    assert not (run / "checkpoint.pth.tmp-4242").exists()
    trainer.fit()
    _assert_same_weights(run, straight)


def test_missing_checkpoint_falls_back_and_no_good_one_is_one_error(data, tmp_path, capsys):
    run = tmp_path / "run"
    with stop_after(4), pytest.raises(TrainingInterrupted):
        pretrain(tiny_config(data, run, **{"train.keep_checkpoints": 2}))
    (run / "checkpoint.pth").unlink()
    assert Trainer(tiny_config(data, run), resume=True).global_step == 3

    for path in (run / "checkpoint_0001.pth", run / "checkpoint.pth"):
        path.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(ValueError, match=r"No readable checkpoint in .*checkpoint\.pth, "):
        Trainer(tiny_config(data, run), resume=True)
    assert main(["pretrain", "--resume", str(run)]) == 2
    err = _one_line_error(capsys)
    assert "checkpoint.pth, checkpoint_0001.pth: all truncated or unreadable" in err


def _fail_from_call(monkeypatch, n: int) -> list[int]:
    """torch.save raises ENOSPC from its n-th call on (after writing part of the file)."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) >= n:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", save)
    return calls


def test_full_disk_keeps_the_previous_checkpoint_and_says_so(
    data, straight, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    overrides = [*tiny_overrides(data, run), "train.checkpoint_every_steps=2"]
    _fail_from_call(monkeypatch, 2)  # step 2 is saved, step 3 (end of epoch 1) is not
    assert main(["pretrain", *overrides]) == 2
    err = _one_line_error(capsys)
    assert err == (
        f"dinolab: error: could not write checkpoint to '{run / 'checkpoint.pth'}': No space "
        "left on device; the previous checkpoint is intact; free space and resume with "
        f"`dinolab pretrain --resume {run}`."
    )
    assert sorted(p.name for p in run.glob("checkpoint*")) == ["checkpoint.pth"]  # no temp file
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 2

    monkeypatch.undo()  # space freed: the command the message gives finishes the run exactly
    assert main(["pretrain", "--resume", str(run)]) == 0
    _assert_same_weights(run, straight)


def test_full_disk_at_the_first_save_says_there_is_no_checkpoint(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(data, run, **{"train.checkpoint_every_steps": 1}))
    _fail_from_call(monkeypatch, 1)
    with pytest.raises(CheckpointWriteError, match="no checkpoint was written before this one"):
        trainer.fit()
    assert not list(run.glob("checkpoint*"))


def test_trim_metrics_drops_what_a_resume_logs_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        '{"step": 2, "loss": 1.0}',
        '{"step": 3, "knn/top1": 0.5}',  # the k-NN at the end of epoch 1 (step 3)
        '{"step": 3, "loss": 1.0}',
        '{"step": 4, "knn/top1": 0.6}',
    ]
    path.write_text("\n".join(rows) + '\n{"step": 4, "lo')
    trim_metrics(path, 3)
    assert path.read_text() == rows[0] + "\n" + rows[1] + "\n"
    trim_metrics(tmp_path / "absent.jsonl", 0)  # nothing to trim is fine


def _to_old_layout(path) -> None:
    """Rewrite a run's config.yaml with the keys dinolab used before `teacher` and `ibot.head`."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(path))
    t = cfg.pop("teacher")
    cfg["optim"].update(momentum_teacher=t["momentum"], momentum_teacher_end=t["momentum_end"])
    cfg["loss"].update(
        teacher_temp_start=t["temp_start"],
        teacher_temp=t["temp"],
        teacher_temp_warmup_epochs=t["temp_warmup_epochs"],
    )
    head = cfg["ibot"].pop("head")
    cfg["ibot"].update({k: head[k] for k in ("out_dim", "hidden_dim", "bottleneck_dim", "nlayers")})
    cfg["eval"]["image_size"] = cfg["viz"]["image_size"] = cfg["highres"]["local_size"] = 0
    path.write_text(OmegaConf.to_yaml(cfg))


def test_a_run_saved_with_the_old_config_keys_resumes_like_the_new_one(data, tmp_path):
    new, old = tmp_path / "new", tmp_path / "old"
    with stop_after(4):
        assert main(["pretrain", str(data), *tiny_overrides(data, new)]) == 143
    shutil.copytree(new, old)
    _to_old_layout(old / "config.yaml")
    assert "momentum_teacher" in (old / "config.yaml").read_text()
    for run in (new, old):  # the same command on both: the old config.yaml is the same run
        assert main(["pretrain", "--resume", str(run), "train.max_steps=0"]) == 0
    expected = load_checkpoint(new / "checkpoint.pth")
    assert expected["global_step"] == 6
    _assert_same_weights(old, expected["model"])


def test_a_run_saved_before_interpolate_offset_resumes_with_size_resampling(data, tmp_path):
    """Its config.yaml has no model.interpolate_offset: --resume and the re-issued command
    (--resume auto, which the new default 0.1 would otherwise refuse) keep its size= rule."""
    new, old = tmp_path / "new", tmp_path / "old"
    with stop_after(4):
        command = ["pretrain", str(data), *tiny_overrides(data, new)]
        assert main([*command, "model.interpolate_offset=0.0"]) == 143
    shutil.copytree(new, old)
    text = (old / "config.yaml").read_text()
    (old / "config.yaml").write_text(text.replace("  interpolate_offset: 0.0\n", ""))
    assert "interpolate_offset" not in (old / "config.yaml").read_text()
    assert main(["pretrain", "--resume", str(new)]) == 0
    again = ["pretrain", str(data), *tiny_overrides(data, old), "--resume", "auto"]
    assert main(again) == 0
    expected = load_checkpoint(new / "checkpoint.pth")
    assert expected["global_step"] == 6
    _assert_same_weights(old, expected["model"])
    assert "interpolate_offset: 0.0" in (old / "config.yaml").read_text()


def _without_freeze_groups(optimizer_state: dict) -> dict:
    """The optimizer state as dinolab saved it before the DINOv2 last layers had groups of
    their own: each one merged back into the group of the same decay and lr factor."""
    groups: list[dict] = []
    for g in optimizer_state["param_groups"]:
        g = {k: v for k, v in g.items() if k != "freeze_epochs"}
        key = (g["apply_wd"], g.get("lr_multiplier", 1.0))
        same = [h for h in groups if (h["apply_wd"], h.get("lr_multiplier", 1.0)) == key]
        if same:
            same[0]["params"] = same[0]["params"] + g["params"]
        else:
            groups.append(g)
    return {**optimizer_state, "param_groups": groups}


def test_a_dinov2_checkpoint_from_before_the_freeze_groups_is_one_clear_error(
    data, tmp_path, capsys
):
    run = tmp_path / "run"
    with stop_after(2):  # KoLeo makes it a DINOv2 run: last layers frozen by lr 0
        assert (
            main(["pretrain", str(data), *tiny_overrides(data, run), "loss.koleo_weight=0.1"])
            == 143
        )
    capsys.readouterr()
    state = load_checkpoint(run / "checkpoint.pth")
    old = _without_freeze_groups(state["optimizer"])
    assert len(old["param_groups"]) < len(state["optimizer"]["param_groups"])
    ckpt.save_checkpoint(run / "checkpoint.pth", {**state, "optimizer": old})

    assert main(["pretrain", "--resume", str(run)]) == 2
    err = _one_line_error(capsys)
    counts = f"({len(old['param_groups'])} vs {len(state['optimizer']['param_groups'])};"
    assert f"holds optimizer state for other parameter groups than this run has {counts}" in err
    assert "start a new run" in err and f"model.init={run}" in err
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 2  # left as it was
