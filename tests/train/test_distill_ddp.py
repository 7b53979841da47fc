"""Distillation on two processes (torchrun, gloo, CPU) equals one process with the same global
batch: the frozen teacher is loaded on every rank, the student and its EMA are synchronised."""

from pathlib import Path

import torch

from dinolab.config.loader import load_config
from dinolab.train.checkpoint import load_checkpoint
from dinolab.train.distill_run import distill
from dinolab.train.monitor import read_metrics

from .conftest import make_images
from .distill_helpers import make_teacher_run, student_overrides
from .test_distributed import DIST, torchrun

# A DINO teacher and no KoLeo: iBOT positions come from each rank's own RNG stream and KoLeo
# is a per-process nearest-neighbour term, so neither could match one process exactly.
DINO_ONLY = {"ibot.weight": 0.0, "loss.koleo_weight": 0.0}


# Two ViT students (no BatchNorm: its batch statistics are per process, as in any DDP run)
TWO_STUDENTS = {"distill.students": "[vit_tiny:embed_dim=24:depth=2:num_heads=2, "
                "vit_tiny:embed_dim=16:depth=1:num_heads=2]"}  # fmt: skip


def one_and_two_processes(tmp: Path, **extra) -> tuple[dict, dict]:
    """The same distillation on one process and on two (torchrun) in `tmp`/one and /two;
    returns both checkpoints' model states after asserting equal losses at every step."""
    data = make_images(tmp / "images", n=21)
    teacher = make_teacher_run(data, tmp / "teacher", **DINO_ONLY)

    def args(out):
        return student_overrides(data, out, teacher, **{**DIST, **DINO_ONLY, **extra})

    distill(load_config(overrides=args(tmp / "one")))
    torchrun("-m", "dinolab", "distill", str(data), *args(tmp / "two"))
    losses = {
        n: [r["loss"] for r in read_metrics(tmp / n / "metrics.jsonl") if "loss" in r]
        for n in ("one", "two")
    }
    assert len(losses["one"]) == len(losses["two"]) == 6
    torch.testing.assert_close(torch.tensor(losses["two"]), torch.tensor(losses["one"]))
    assert losses["one"][-1] != losses["one"][0]  # the student moved
    one = load_checkpoint(tmp / "one" / "checkpoint.pth")["model"]
    two = load_checkpoint(tmp / "two" / "checkpoint.pth")["model"]
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=2e-5, msg=k)
    return one, two


def test_two_process_distillation_matches_one_process(tmp_path):
    one_and_two_processes(tmp_path)


def test_two_students_on_two_processes_match_one_process(tmp_path):
    one, _ = one_and_two_processes(tmp_path, **TWO_STUDENTS)
    assert any(k.startswith("student.vit_tiny_embed_dim_16") for k in one)  # both students
    for name in ("vit_tiny_embed_dim_24_depth_2_num_heads_2",
                 "vit_tiny_embed_dim_16_depth_1_num_heads_2"):  # fmt: skip
        assert (tmp_path / "two" / "students" / name / "teacher_backbone.safetensors").is_file()
