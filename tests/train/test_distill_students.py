"""Several students from one teacher forward per step (`distill.students`, recipe mode).

The tiny DINOv2 teacher of `distill_helpers` teaches two students at once: a 2-block ViT/8 and
a small ResNet (iBOT off: a ResNet has no patch tokens), or two ViTs with iBOT on.
"""

import copy
import functools
import json

import pytest
import torch

from dinolab.cli import main
from dinolab.config.loader import ConfigError
from dinolab.losses import centering
from dinolab.run_dir import load_checkpoint, load_run_backbone
from dinolab.train.distill import prepare_distill_config
from dinolab.train.distill_run import distill
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.optim import apply_schedules, build_optimizer, clip_gradients, clip_module_norms
from dinolab.train.trainer import Trainer

from .conftest import make_images, stop_after
from .distill_helpers import images_and_teacher, student_config, student_overrides

VIT = "vit_tiny:embed_dim=24:depth=2:num_heads=2"
MIXED = {  # a ViT and a ResNet; EMA centring, so the centre is shared state to resume
    "distill.students": f"[{VIT}, small_resnet:embed_dim=16]",
    "ibot.weight": 0.0,
    "loss.centering": "ema",
}
NAMES = ["vit_tiny_embed_dim_24_depth_2_num_heads_2", "small_resnet_embed_dim_16"]
TWO_VITS = {"distill.students": f"[{VIT}, vit_tiny:embed_dim=16:depth=1:num_heads=2]"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return images_and_teacher(tmp_path_factory.mktemp("students"))


@pytest.fixture(scope="module")
def straight(setup, tmp_path_factory):
    data, teacher = setup
    run = tmp_path_factory.mktemp("straight") / "run"
    distill(student_config(data, run, teacher, **MIXED))
    return run


def _trainer(setup, run, **kw) -> Trainer:
    data, teacher = setup
    return Trainer(prepare_distill_config(student_config(data, run, teacher, **kw)))


def test_two_students_share_one_teacher_forward_per_step(setup, tmp_path, monkeypatch):
    trainer = _trainer(setup, tmp_path / "run", **TWO_VITS)  # iBOT on: positions shared too
    model, frozen = trainer.model, trainer.model.frozen
    assert list(model.student) == ["vit_tiny_embed_dim_24_depth_2_num_heads_2",
                                   "vit_tiny_embed_dim_16_depth_1_num_heads_2"]  # fmt: skip
    calls = {"forward": 0, "backbone": 0, "dino_head": 0, "ibot_head": 0}
    real = frozen.backbone.forward_features

    def counted(x):
        calls["backbone"] += 1
        return real(x)

    frozen.backbone.forward_features = counted
    for part, module in (("forward", frozen), ("dino_head", frozen.dino_head)):
        module.register_forward_hook(lambda *a, part=part: calls.__setitem__(part, calls[part] + 1))
    frozen.ibot_head.register_forward_hook(
        lambda *a: calls.__setitem__("ibot_head", calls["ibot_head"] + 1)
    )
    targets_made = []
    real_targets = centering.teacher_targets
    monkeypatch.setattr(
        centering, "teacher_targets", lambda *a: targets_made.append(1) or real_targets(*a)
    )
    teacher_before = copy.deepcopy(frozen.state_dict())
    students_before = copy.deepcopy(model.student.state_dict())
    batches = iter(trainer.loader)
    for _ in range(2):
        metrics = trainer._step(next(batches))
        trainer.global_step += 1
    trainer.close()
    assert calls == {"forward": 2, "backbone": 2, "dino_head": 2, "ibot_head": 2}
    assert len(targets_made) == 2 * 2  # DINO and iBOT targets once per step, not per student
    for k, v in frozen.state_dict().items():  # the teacher is untouched
        assert torch.equal(v, teacher_before[k]), k
    assert all(p.grad is None for p in frozen.parameters())
    for name, net in model.student.items():  # every student learnt, its EMA is not itself
        moved = [k for k, v in net.state_dict().items()
                 if not torch.equal(v, students_before[f"{name}.{k}"])]  # fmt: skip
        assert any(k.startswith("backbone.") for k in moved), name
        ema = model.teacher[name].state_dict()
        assert any(not torch.equal(v, ema[k]) for k, v in net.state_dict().items()), name
        assert float(metrics[f"ibot_loss/{name}"]) > 0
    total = sum(float(metrics[f"loss/{n}"]) for n in model.student)
    assert float(metrics["loss"]) == pytest.approx(total, rel=1e-6)


def _freeze(module) -> dict[int, int]:
    """Every head's last layer frozen for the first epoch (DINOv2's lr 0)."""
    return {id(p): 1 for n, p in module.named_parameters() if "last_layer" in n}


def test_one_adamw_steps_each_student_as_its_own_would(setup, tmp_path):
    """Per-student param groups in one AdamW == one AdamW per student, with either clipping
    rule, layer-wise lr decay and the last-layer freeze (bit for bit)."""
    trainer = _trainer(setup, tmp_path / "run", **TWO_VITS)
    trainer.close()
    for clip in ("per_param", "per_module_norm"):
        together = copy.deepcopy(trainer.model.student)
        apart = copy.deepcopy(trainer.model.student)
        kw = {"layer_decay": 0.7}  # the students' depths differ: 2 and 1 blocks
        one = build_optimizer(together, last_layer_freeze=_freeze(together), **kw)
        own = {n: build_optimizer(net, last_layer_freeze=_freeze(net), **kw)
               for n, net in apart.items()}  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        for step in range(3):
            grads = [torch.randn(p.shape, generator=gen) * 10 for p in together.parameters()]
            for p, q, g in zip(together.parameters(), apart.parameters(), grads, strict=True):
                p.grad, q.grad = g.clone(), g.clone()
            rule = clip_gradients if clip == "per_param" else clip_module_norms
            rule(together, 0.5)
            apply_schedules(one, 1e-2, 0.04, epoch=step)
            one.step()
            for n, net in apart.items():
                rule(net, 0.5)
                apply_schedules(own[n], 1e-2, 0.04, epoch=step)
                own[n].step()
        for (k, p), q in zip(together.named_parameters(), apart.parameters(), strict=True):
            assert torch.equal(p, q), (clip, k)


def test_each_student_is_exported_as_a_run_that_evaluates(setup, straight, tmp_path, capsys):
    state = load_checkpoint(straight / "checkpoint.pth")["model"]
    summary = json.loads((straight / "summary.json").read_text())
    assert list(summary["students"]) == NAMES
    for name in NAMES:
        backbone, cfg = load_run_backbone(straight / "students" / name)
        assert cfg.distill.students == [] and cfg.model.arch == name.split("_embed")[0]
        sd = backbone.state_dict()
        for k, v in sd.items():
            assert torch.equal(v, state[f"teacher.{name}.backbone.{k}"]), (name, k)
        assert any(not torch.equal(v, state[f"student.{name}.backbone.{k}"]) for k, v in sd.items())
    top, cfg = load_run_backbone(straight)  # the run itself: the first student, as model.*
    assert cfg.model.embed_dim == 24 and cfg.model.arch == "vit_tiny"
    for k, v in top.state_dict().items():
        assert torch.equal(v, state[f"teacher.{NAMES[0]}.backbone.{k}"]), k

    folders = tmp_path / "labelled"
    for split in ("train", "val"):
        for i, cls in enumerate(("a", "b")):
            make_images(folders / split / cls, n=4, seed=i)
    out = tmp_path / "knn"
    flags = "--k 1 --precision fp32 --num-workers 0 --batch-size 4 --no-progress".split()
    student = str(straight / "students" / NAMES[1])
    train, val = str(folders / "train"), str(folders / "val")
    argv = ["eval", "knn", student, "--train", train, "--val", val, *flags, "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "knn.json").read_text())["scores"]


def test_resume_of_two_students_is_exact(setup, straight, tmp_path):
    data, teacher = setup
    run = tmp_path / "run"
    with stop_after(4), pytest.raises(TrainingInterrupted):
        distill(student_config(data, run, teacher, **MIXED))
    assert main(["distill", "--resume", str(run)]) == 0
    got, want = (
        load_checkpoint(run / "checkpoint.pth"),
        load_checkpoint(straight / "checkpoint.pth"),
    )
    assert got["global_step"] == want["global_step"] == 6
    assert "dino_loss.centering.center" in want["model"]  # the shared EMA centre is resumed too
    assert got["model"].keys() == want["model"].keys()
    for k, v in want["model"].items():
        assert torch.equal(got["model"][k], v), k
    for name in NAMES:
        a = load_run_backbone(run / "students" / name)[0].state_dict()
        b = load_run_backbone(straight / "students" / name)[0].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b), name


def test_activation_checkpointing_reaches_every_student(setup, tmp_path):
    trainer = _trainer(
        setup, tmp_path / "run", **TWO_VITS, **{"train.activation_checkpointing": True}
    )
    trainer.close()
    for name, net in trainer.model.student.items():
        assert all(isinstance(b.forward, functools.partial) for b in net.backbone.blocks), name


@pytest.mark.parametrize(
    ("students", "extra", "message"),
    [
        (
            "[vit_tiny, vit_tnyi]",
            {},
            "distill.students entry 'vit_tnyi' names an unknown arch "
            "'vit_tnyi' (did you mean 'vit_tiny'?): use one of",
        ),
        (
            "[vit_tiny, vit_tiny]",
            {},
            "distill.students names the student 'vit_tiny' twice: give each student once",
        ),
        (
            "[vit_tiny:patch_size=4]",
            {},
            "distill.students entry 'vit_tiny:patch_size=4' sets "
            "'patch_size': a student sets only embed_dim, depth, num_heads, cifar_stem",
        ),
        (
            "[vit_tiny:depth=two]",
            {},
            "distill.students entry 'vit_tiny:depth=two': depth=two must be a whole number.",
        ),
        (
            "[vit_tiny, small_resnet]",
            {},
            "distill.students: 'small_resnet' is not a ViT, and "
            "iBOT learns from patch tokens: set ibot.weight=0 or give only vit_* students.",
        ),
        ("[vit_tiny]", {"distill.mode": "feature"}, "distill.students needs recipe mode"),
        ("[vit_tiny]", {"model.init": "/x"}, "model.init starts one backbone"),
    ],
)
def test_bad_students_are_one_clear_sentence(setup, tmp_path, capsys, students, extra, message):
    data, teacher = setup
    run = tmp_path / "run"
    args = student_overrides(data, run, teacher, **{"distill.students": students, **extra})
    assert main(["distill", str(data), "--teacher", str(teacher), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dinolab: error: {message}") and "\n" not in err
    assert not run.exists()
    with pytest.raises(ConfigError):  # the same check in the library
        prepare_distill_config(
            student_config(data, run, teacher, **{"distill.students": students, **extra})
        )
