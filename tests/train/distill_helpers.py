"""A tiny teacher run and tiny student overrides, shared by the distillation tests."""

from pathlib import Path

from dinolab.config.loader import load_config
from dinolab.train.pretrain import pretrain

from .conftest import make_images, tiny_overrides

TEACHER_DINOV2 = {  # a 2-block ViT/8 DINOv2 run: DINO + iBOT (own head) + KoLeo, Sinkhorn-Knopp
    "ibot.weight": 1.0,
    "ibot.head.out_dim": 48,
    "ibot.head.hidden_dim": 64,
    "ibot.head.bottleneck_dim": 16,
    "loss.koleo_weight": 0.1,
    "loss.centering": "sinkhorn",
    "train.epochs": 1,
}


def make_teacher_run(data: Path, run: Path, **overrides) -> Path:
    """Pretrain the tiny teacher (3 steps) in `run`; returns `run`."""
    pretrain(load_config(overrides=tiny_overrides(data, run, **{**TEACHER_DINOV2, **overrides})))
    return run


def images_and_teacher(tmp: Path) -> tuple[Path, Path]:
    """Tiny images in `tmp`/images and the tiny teacher trained on them in `tmp`/teacher."""
    data = make_images(tmp / "images")
    return data, make_teacher_run(data, tmp / "teacher")


def student_overrides(data: Path, out: Path, teacher: Path, **overrides) -> list[str]:
    """A narrower 2-block ViT student (embed 24) with the teacher's prototype counts."""
    base = {
        "model.embed_dim": 24,
        "distill.teacher": str(teacher),
        "ibot.weight": 1.0,
        "ibot.head.out_dim": 48,
        "ibot.head.hidden_dim": 64,
        "ibot.head.bottleneck_dim": 16,
        "loss.koleo_weight": 0.1,
        "loss.centering": "sinkhorn",
        "teacher.momentum": 0.994,
        "teacher.temp_start": 0.07,
    }
    return tiny_overrides(data, out, **{**base, **overrides})


def student_config(data: Path, out: Path, teacher: Path, **overrides):
    return load_config(overrides=student_overrides(data, out, teacher, **overrides))
