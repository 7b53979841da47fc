import json
import logging

import pytest
import torch

from dinolab.config.loader import load_saved_config
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.monitor import NonFiniteLossError, read_metrics
from dinolab.train.pretrain import pretrain
from dinolab.train.trainer import Trainer

from .conftest import make_images, stop_after, tiny_config


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pth")["model"]


def test_training_reduces_the_loss(image_dir, tmp_path):
    # Fixed targets (teacher momentum 1, centre momentum 1): the student must learn to match the
    # teacher through the real pipeline (crops, model, optimizer, schedules).
    cfg = tiny_config(
        image_dir,
        tmp_path / "run",
        **{
            "train.epochs": 8,
            "model.drop_path_rate": 0.0,
            "optim.base_lr": 0.05,
            "loss.teacher_temp": 0.04,
            "optim.momentum_teacher": 1.0,
            "loss.center_momentum": 1.0,
        },
    )
    pretrain(cfg)
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 8 * 3
    mean = lambda key, part: sum(r[key] for r in part) / len(part)  # noqa: E731
    assert mean("loss", rows[-6:]) < mean("loss", rows[:3]) - 0.2
    assert mean("kl", rows[-6:]) < 0.5 * mean("kl", rows[:3])


def test_teacher_gets_no_gradient_and_follows_the_student(image_dir, tmp_path):
    trainer = Trainer(tiny_config(image_dir, tmp_path / "run"))
    before = {k: v.clone() for k, v in trainer.model.teacher.state_dict().items()}
    batch = next(iter(trainer.loader))
    trainer._step(batch)
    assert all(p.grad is None for p in trainer.model.teacher.parameters())
    assert any(p.grad is not None for p in trainer.model.student.parameters())
    after = trainer.model.teacher.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved, "the EMA update did not move the teacher"


def test_resume_is_exact(image_dir, tmp_path):
    straight = tmp_path / "straight"
    pretrain(tiny_config(image_dir, straight))  # 2 epochs x 3 steps
    split = tmp_path / "split"
    with stop_after(4), pytest.raises(TrainingInterrupted):  # a SIGTERM mid-epoch 2
        pretrain(tiny_config(image_dir, split))
    assert load_checkpoint(split / "checkpoint.pth")["global_step"] == 4
    resumed = Trainer(tiny_config(image_dir, split), resume=True)
    resumed.fit()
    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_directory_contents(image_dir, tmp_path):
    run = tmp_path / "run"
    summary = pretrain(tiny_config(image_dir, run, **{"train.epochs": 1}))
    for name in [
        "config.yaml",
        "checkpoint.pth",
        "metrics.jsonl",
        "curves.png",
        "teacher_backbone.safetensors",
        "summary.json",
    ]:
        assert (run / name).is_file(), name
    assert json.loads((run / "summary.json").read_text())["steps"] == summary["steps"] == 3
    row = read_metrics(run / "metrics.jsonl")[0]
    for key in ["loss", "teacher_entropy", "kl", "lr", "wd", "momentum", "teacher_temp"]:
        assert key in row, key


def test_corrupt_images_are_skipped_and_counted_once_per_run(tmp_path, caplog):
    data = make_images(tmp_path / "images", n=16)
    (data / "empty.jpg").write_bytes(b"")
    (data / "text.png").write_text("not an image")
    good = (data / "img_000.png").read_bytes()
    (data / "truncated.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="dinolab"):
        summary = pretrain(tiny_config(data, tmp_path / "run", **{"train.epochs": 3}))
    assert summary["skipped_images"] == 3  # each file once per run, not once per epoch
    warned = [r for r in caplog.records if "skipped unreadable image" in r.getMessage()]
    assert len(warned) == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(image_dir, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = tiny_config(image_dir, run, **{"train.checkpoint_every_steps": 2})
    trainer = Trainer(cfg)
    real = trainer.model.forward_loss

    def poisoned(batch, teacher_temp):
        out = real(batch, teacher_temp)
        if trainer.global_step >= 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(trainer.model, "forward_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 4"):
        trainer.fit()
    state = load_checkpoint(run / "checkpoint.pth")
    assert state["global_step"] == 4  # steps 0-3 were good
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_resume_without_checkpoint_is_a_clear_error(image_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint.pth to resume from"):
        Trainer(tiny_config(image_dir, tmp_path / "nothing"), resume=True)


def test_resume_with_another_architecture_names_the_keys(image_dir, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config(image_dir, run, **{"train.max_steps": 1}))
    with pytest.raises(ValueError, match="blocks.2"):
        Trainer(tiny_config(image_dir, run, **{"model.depth": 3}), resume=True)


def test_new_run_refuses_to_overwrite(image_dir, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config(image_dir, run, **{"train.max_steps": 1}))
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(tiny_config(image_dir, run))


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images found"):
        pretrain(tiny_config(tmp_path / "empty", tmp_path / "run"))


def test_fewer_images_than_a_batch_is_a_clear_error(image_dir, tmp_path):
    with pytest.raises(ValueError, match="fewer than one global batch.*train.batch_size"):
        Trainer(tiny_config(image_dir, tmp_path / "run", **{"train.batch_size": 64}))


def test_online_knn_is_logged_every_epoch(tmp_path):
    for split, seed in (("train", 1), ("val", 2)):
        for c in ("a", "b"):
            make_images(tmp_path / split / c, n=6, seed=seed + ord(c))
    cfg = tiny_config(
        tmp_path / "train",
        tmp_path / "run",
        **{
            "data.path": str(tmp_path / "train"),
            "eval.train": str(tmp_path / "train"),
            "eval.val": str(tmp_path / "val"),
            "eval.every_epochs": 1,
            "eval.student": True,
            "eval.k": "[1,3]",
        },
    )
    Trainer(cfg).fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    knn = [r for r in rows if "knn/teacher_k3_top1" in r]
    assert len(knn) == 2  # after epoch 1 and epoch 2
    assert all(0.0 <= r["knn/student_k1_top1"] <= 100.0 for r in knn)


def test_the_final_knn_sees_the_configured_view(tmp_path, monkeypatch):
    import dinolab.eval.knn

    for split, seed in (("train", 1), ("val", 2)):
        for c in ("a", "b"):
            make_images(tmp_path / split / c, n=6, seed=seed + ord(c))
    seen, extract = [], dinolab.eval.knn.extract_features
    monkeypatch.setattr(
        dinolab.eval.knn,
        "extract_features",
        lambda *a, **kw: seen.append(kw["resize_ratio"]) or extract(*a, **kw),
    )
    views = {"eval.train": str(tmp_path / "train"), "eval.val": str(tmp_path / "val"),
             "eval.k": "[1,3]", "eval.resize_ratio": 1.0, "train.epochs": 1}  # fmt: skip
    summary = pretrain(tiny_config(tmp_path / "train", tmp_path / "run", **views))
    assert seen == [1.0, 1.0] and summary["knn"]["scores"]  # memory bank and queries


def test_precision_auto_is_resolved_logged_and_recorded(image_dir, tmp_path, monkeypatch):
    from dinolab import hardware

    monkeypatch.setattr(hardware, "_cpu_flags_and_model", lambda: ({"avx2"}, "Test CPU"))
    monkeypatch.setattr(hardware, "_onednn_bf16", lambda: False)
    hardware.probe_cpu.cache_clear()
    try:
        cfg = tiny_config(image_dir, tmp_path / "run", **{"train.precision": "auto"})
        trainer = Trainer(cfg)
    finally:
        hardware.probe_cpu.cache_clear()
    assert trainer.precision == "fp32"
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert "# precision auto -> fp32: this CPU has no native bf16" in text
    assert "# threads: " in text and "cores for this process: 1 torch thread," in text
    assert "# attention: auto -> sdpa for fp32 on cpu" in text
    assert "precision: auto" in text  # the key keeps the intent: a resume elsewhere re-resolves
    assert load_saved_config(tmp_path / "run" / "config.yaml").train.precision == "auto"


def test_batched_augmentation_trains_and_resumes_exactly(image_dir, tmp_path):
    # data.augment_impl=batched: the loader's workers decode, the collate cuts the views; a
    # run cut by SIGTERM and resumed ends on the same weights as a straight run.
    kw = {"data.augment_impl": "batched", "train.epochs": 1}
    straight = tmp_path / "straight"
    pretrain(tiny_config(image_dir, straight, **kw))
    rows = [r for r in read_metrics(straight / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    split = tmp_path / "split"
    with stop_after(2), pytest.raises(TrainingInterrupted):
        pretrain(tiny_config(image_dir, split, **kw))
    Trainer(tiny_config(image_dir, split, **kw), resume=True).fit()
    a, b = _weights(straight), _weights(split)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_saved_config(straight / "config.yaml").data.augment_impl == "batched"
