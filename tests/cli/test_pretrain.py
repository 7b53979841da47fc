import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dinolab.cli import main
from dinolab.train.checkpoint import load_checkpoint
from tests.train.conftest import make_images

TINY = [
    "model.arch=vit_tiny",
    "model.patch_size=8",
    "model.img_size=32",
    "model.embed_dim=32",
    "model.depth=2",
    "model.num_heads=2",
    "head.out_dim=64",
    "head.hidden_dim=64",
    "head.bottleneck_dim=16",
    "data.global_size=32",
    "data.local_size=16",
    "data.num_local_crops=2",
    "data.num_workers=0",
    "train.batch_size=8",
    "train.precision=fp32",
    "train.progress=false",
    "train.tensorboard=false",
    "optim.warmup_epochs=0",
]


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", "--preset", "quickstart", "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "arch: vit_tiny" in out


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["pretrain", str(tmp_path / "missing"), "train.epoch=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dinolab: error: Unknown config key 'train.epoch'")
    assert "\n" not in err
    assert main(["pretrain", str(tmp_path / "missing"), f"out_dir={tmp_path / 'r'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["pretrain", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_pretrain_then_eval_knn(tmp_path, capsys):
    data = tmp_path / "labelled"
    for c in range(2):
        make_images(data / "train" / f"class{c}", n=8, seed=c)
        make_images(data / "val" / f"class{c}", n=4, seed=10 + c)
    run = tmp_path / "run"
    assert main(["pretrain", str(data / "train"), f"out_dir={run}", "train.epochs=1", *TINY]) == 0
    assert (
        main(
            [
                "eval",
                "knn",
                str(run),
                "--train",
                str(data / "train"),
                "--val",
                str(data / "val"),
                "--k",
                "1",
                "5",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| 1 |" in out and "| 5 |" in out
    assert (run / "knn.json").is_file() and (run / "knn.md").is_file()


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    data = make_images(tmp_path / "images", n=24)
    common = [*TINY, "train.epochs=3", "train.checkpoint_every_steps=1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["pretrain", str(data), f"out_dir={straight}", *common]) == 0

    cmd = [sys.executable, "-m", "dinolab", "pretrain", str(data), f"out_dir={killed}", *common]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ckpt = killed / "checkpoint.pth"
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file() and load_checkpoint(ckpt)["global_step"] >= 2:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(["pretrain", "--resume", str(killed)]) == 0
    a = load_checkpoint(straight / "checkpoint.pth")["model"]
    b = load_checkpoint(ckpt)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_folder_without_one_readable_image_is_refused_before_anything_is_written(
    tmp_path, capsys
):
    broken, empty = tmp_path / "broken", tmp_path / "empty"
    broken.mkdir()
    empty.mkdir()
    for i in range(20):
        (broken / f"img_{i:02d}.jpg").write_text("not an image")
    for folder, words in [(broken, "None of the 20 files"), (empty, "No images found")]:
        run = tmp_path / f"run_{folder.name}"
        assert main(["pretrain", str(folder), f"out_dir={run}", *TINY]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dinolab: error: ") and words in err, err
        assert "\n" not in err and "Traceback" not in err
        assert not run.exists()


def test_sigterm_saves_a_checkpoint_prints_the_resume_command_and_the_resume_finishes(
    tmp_path, capsys
):
    data = make_images(tmp_path / "images", n=24)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dinolab", "pretrain", str(data), f"out_dir={run}", *TINY]
    cmd += ["train.epochs=16", "train.log_every_steps=1"]  # 48 steps: not done at the kill
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = run / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    step = load_checkpoint(run / "checkpoint.pth")["global_step"]
    assert 2 <= step < 48
    assert err.strip().splitlines()[-1] == (
        f"dinolab: stopped by SIGTERM at step {step}: checkpoint saved; resume with "
        f"`dinolab pretrain --resume {run}`"
    )
    assert "Traceback" not in err
    assert main(["pretrain", "--resume", str(run)]) == 0
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 48
    assert "epochs / steps  16 / 48" in capsys.readouterr().out


def test_the_ctrl_c_hint_says_what_was_saved(tmp_path):
    from dinolab.cli.pretrain import resume_hint

    run = tmp_path / "run"
    assert resume_hint(run) == "nothing was saved; run the same command again"
    run.mkdir()
    (run / "config.yaml").write_text("out_dir: x\n")
    assert "no checkpoint was saved yet; `dinolab pretrain --resume" in resume_hint(run)
    (run / "checkpoint.pth").write_bytes(b"")
    assert resume_hint(run) == (
        f"resume from its last checkpoint with `dinolab pretrain --resume {run}`"
    )


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.precision=fp16", "train.precision=fp16 is not one of auto, bf16, fp32"),
        ("data.global_size=30", "data.global_size=30 is not a multiple of model.patch_size=8: "
         "set data.global_size to 24 or 32"),
        ("data.local_size=20", "set data.local_size to 16 or 24"),
        ("train.epochs=abc", "'train.epochs' in override 'train.epochs=abc' must be an int"),
        ("train.device=gpu", "device 'gpu' is not a device name"),
        ("train.teacher_update=copy", "train.teacher_update='copy' is unknown; use one of ema"),
        ("train.parallel=zero3", "train.parallel='zero3' is unknown; use one of ddp, fsdp."),
        pytest.param("train.device=cuda", "asks for a GPU, but PyTorch sees no CUDA GPU",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
    ],
)  # fmt: skip
def test_config_mistakes_are_one_sentence_before_anything_is_written(
    tmp_path, capsys, override, words
):
    data = make_images(tmp_path / "images", n=2)
    run = tmp_path / "run"
    assert main(["pretrain", str(data), f"out_dir={run}", *TINY, override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dinolab: error: ") and words in err, err
    assert "\n" not in err and "Traceback" not in err and "class" not in err
    assert not run.exists()
