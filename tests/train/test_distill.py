"""Recipe distillation (DINOv2 section 5): a frozen tiny DINOv2 run teaches a narrower ViT.

The teacher is pretrained once per module (3 steps); every distillation run is the tiny
2-epoch x 3-step config of conftest.
"""

import hashlib

import numpy as np
import pytest
import torch

from dinolab.cli import main
from dinolab.models.layers.drop_path import DropPath
from dinolab.run_dir import load_run_backbone
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.distill import prepare_distill_config
from dinolab.train.distill_run import distill
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.schedules import cosine_schedule
from dinolab.train.trainer import Trainer

from .conftest import stop_after
from .distill_helpers import images_and_teacher, student_config, student_overrides


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return images_and_teacher(tmp_path_factory.mktemp("distill"))


@pytest.fixture(scope="module")
def straight(setup, tmp_path_factory):
    """The uninterrupted distillation run's directory."""
    data, teacher = setup
    run = tmp_path_factory.mktemp("straight") / "run"
    distill(student_config(data, run, teacher))
    return run


def _trainer(setup, run, **kw) -> Trainer:
    data, teacher = setup
    return Trainer(prepare_distill_config(student_config(data, run, teacher, **kw)))


def test_pretraining_checkpoints_keep_both_heads_of_both_networks(setup):
    keys = load_checkpoint(setup[1] / "checkpoint.pth")["model"].keys()
    for net in ("student", "teacher"):
        for head in ("dino", "ibot"):
            assert any(k.startswith(f"{net}.head.{head}.last_layer") for k in keys), (net, head)


def test_teacher_is_frozen_bit_identical_and_outside_the_checkpoint(setup, straight):
    data, teacher = setup
    saved = load_checkpoint(teacher / "checkpoint.pth")["model"]
    trainer = _trainer(setup, straight.parent / "again")
    frozen = trainer.model.frozen
    trainer.fit()
    trainer.close()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert all(p.grad is None for p in frozen.parameters())
    for name, p in frozen.backbone.state_dict().items():
        assert torch.equal(p, saved[f"teacher.backbone.{name}"]), name
    for name, p in frozen.ibot_head.state_dict().items():
        assert torch.equal(p, saved[f"teacher.head.ibot.{name}"]), name
    state = load_checkpoint(straight / "checkpoint.pth")
    prefixes = {k.split(".")[0] for k in state["model"]}
    assert prefixes == {"student", "teacher"}  # Sinkhorn-Knopp targets: the losses keep no state
    assert state["model"]["student.backbone.cls_token"].shape[-1] == 24  # the student's width
    sha = hashlib.sha256((teacher / "checkpoint.pth").read_bytes()).hexdigest()
    assert f"teacher_sha256: {sha}" in (straight / "config.yaml").read_text()


def test_spare_ema_follows_the_momentum_schedule_and_is_exported(setup, straight, tmp_path):
    trainer = _trainer(setup, tmp_path / "run")
    momentum = trainer.schedules["momentum"]
    np.testing.assert_allclose(momentum, cosine_schedule(0.994, 1.0, 2, 3))  # 0.994 -> 1
    ema, student = trainer.model.teacher, trainer.model.student
    before = {n: p.detach().clone() for n, p in ema.named_parameters()}
    trainer._step(next(iter(trainer.loader)))
    trainer.close()
    s = dict(student.named_parameters())
    moved = 0
    for name, p in ema.named_parameters():
        torch.testing.assert_close(p, 0.994 * before[name] + 0.006 * s[name].detach())
        moved += not torch.equal(p, s[name])
    assert moved > 0  # the EMA is not the student

    exported, cfg = load_run_backbone(straight)  # the run's product is the EMA backbone
    state = load_checkpoint(straight / "checkpoint.pth")["model"]
    assert cfg.model.embed_dim == 24
    for name, p in exported.state_dict().items():
        assert torch.equal(p, state[f"teacher.backbone.{name}"]), name
    differs = [
        n for n, p in exported.state_dict().items()
        if not torch.equal(p, state[f"student.backbone.{n}"])
    ]  # fmt: skip
    assert differs


def test_spare_ema_of_a_batchnorm_student_follows_its_running_statistics(setup, tmp_path):
    """The spare EMA never runs forward: its BatchNorm statistics must follow the student's."""
    trainer = _trainer(setup, tmp_path / "run", **{"model.arch": "small_resnet", "ibot.weight": 0})
    ema, student = trainer.model.teacher, trainer.model.student
    before = {n: b.detach().clone() for n, b in ema.named_buffers()}
    trainer._step(next(iter(trainer.loader)))
    trainer.close()
    s = dict(student.named_buffers())
    stats = [n for n in before if n.endswith(("running_mean", "running_var"))]
    assert stats
    for name in stats:
        assert not torch.equal(s[name], before[name]), name  # the student's statistics moved
        torch.testing.assert_close(
            dict(ema.named_buffers())[name], 0.994 * before[name] + 0.006 * s[name]
        )
    for name in (n for n in before if n.endswith("num_batches_tracked")):
        assert torch.equal(dict(ema.named_buffers())[name], s[name])


def test_the_student_sees_no_mask_and_drops_no_path(setup, tmp_path):
    trainer = _trainer(setup, tmp_path / "run")  # tiny_overrides asks for drop_path 0.1
    cfg = trainer.cfg
    assert cfg.model.drop_path_rate == 0.0 and cfg.ibot.mask_probability == 0.0
    assert not any(isinstance(m, DropPath) for m in trainer.model.student.modules())
    seen = []
    backbone = trainer.model.student.backbone
    real = backbone.forward_features_list

    def spy(xs, masks=None, **kw):
        seen.append(masks)
        return real(xs, masks, **kw)

    backbone.forward_features_list = spy
    batch = next(iter(trainer.loader))
    metrics = trainer._step(batch)
    trainer.close()
    assert seen and all(m is None for ms in seen for m in ms)
    assert batch.get("masks") is None or not batch["masks"].any()
    assert float(metrics["ibot_loss"]) > 0 and float(metrics["koleo_loss"]) != 0


def test_prototype_counts_must_match_the_teachers(setup, tmp_path, capsys):
    data, teacher = setup
    args = student_overrides(data, tmp_path / "run", teacher, **{"head.out_dim": 32})
    assert main(["distill", str(data), "--teacher", str(teacher), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"dinolab: error: The teacher '{teacher}' has 64 prototypes where the student has "
        "head.out_dim=32: set head.out_dim=64 (the student learns the teacher's prototype "
        "distributions)."
    )
    assert not (tmp_path / "run").exists()


def test_resume_is_exact_and_refuses_a_changed_teacher(setup, straight, tmp_path, capsys):
    data, teacher = setup
    run = tmp_path / "run"
    with stop_after(4), pytest.raises(TrainingInterrupted):
        distill(student_config(data, run, teacher))
    assert load_checkpoint(run / "checkpoint.pth")["global_step"] == 4
    assert main(["distill", "--resume", str(run)]) == 0
    got, want = (
        load_checkpoint(run / "checkpoint.pth"),
        load_checkpoint(straight / "checkpoint.pth"),
    )
    assert got["global_step"] == want["global_step"] == 6
    assert got["model"].keys() == want["model"].keys()
    for k, v in want["model"].items():
        assert torch.equal(got["model"][k], v), k

    copy = tmp_path / "teacher"  # a teacher that changes under a run is refused on resume
    copy.mkdir()
    for f in ("config.yaml", "checkpoint.pth"):
        (copy / f).write_bytes((teacher / f).read_bytes())
    other = tmp_path / "other"
    with stop_after(2), pytest.raises(TrainingInterrupted):
        distill(student_config(data, other, copy))
    state = torch.load(copy / "checkpoint.pth", weights_only=True)
    state["model"]["teacher.head.dino.last_layer.weight_g"] += 1.0
    torch.save(state, copy / "checkpoint.pth")
    assert main(["distill", "--resume", str(other)]) == 2
    err = capsys.readouterr().err
    assert "changed since this distillation run began" in err and "\n" not in err.strip()
