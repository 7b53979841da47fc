"""Distillation on two processes (torchrun, gloo, CPU) equals one process with the same global
batch: the frozen teacher is loaded on every rank, the student and its EMA are synchronised."""

import pytest
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill_ddp")
    data = make_images(tmp / "images", n=21)
    teacher = make_teacher_run(data, tmp / "teacher", **DINO_ONLY)

    def args(out):
        return student_overrides(data, out, teacher, **{**DIST, **DINO_ONLY})

    distill(load_config(overrides=args(tmp / "one")))
    torchrun("-m", "dinolab", "distill", str(data), *args(tmp / "two"))
    return tmp


def test_two_process_distillation_matches_one_process(runs):
    losses = {
        n: [r["loss"] for r in read_metrics(runs / n / "metrics.jsonl") if "loss" in r]
        for n in ("one", "two")
    }
    assert len(losses["one"]) == len(losses["two"]) == 6
    torch.testing.assert_close(torch.tensor(losses["two"]), torch.tensor(losses["one"]))
    assert losses["one"][-1] != losses["one"][0]  # the student moved
    one = load_checkpoint(runs / "one" / "checkpoint.pth")["model"]
    two = load_checkpoint(runs / "two" / "checkpoint.pth")["model"]
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=2e-5, msg=k)
