"""The shared flags (same spelling and defaults on every command) and the one model resolver."""

import argparse

import pytest
import torch

from dinolab.cli import build_parser, main
from dinolab.cli.options import resolve_model, runtime
from dinolab.cli.pretrain import runtime_overrides
from dinolab.config.loader import load_saved_config, save_config
from dinolab.data.augment import IMAGENET_MEAN, IMAGENET_STD
from dinolab.hub import load

# every command that runs a model on images, with its required arguments
RUNNERS = {
    ("pretrain",): ["imgs"],
    **{("eval", p): ["r", "--train", "t", "--val", "v"] for p in
       ("knn", "fewshot", "linear", "logreg")},
    ("extract",): ["m", "imgs", "--out", "f.npy"],
    **{("viz", c): ["m", "a.jpg"] for c in ("attention", "pca", "match", "video")},
}  # fmt: skip
WITH_MODEL = [c for c in RUNNERS if c[0] != "pretrain"] + [("export",), ("hub", "load")]


def subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    p = build_parser()
    for word in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[word]
    return p


def options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


@pytest.mark.parametrize("path", list(RUNNERS), ids="-".join)
def test_same_runtime_flags_on_every_command(path):
    opts = options(subparser(path))
    assert opts["--precision"].choices == ("auto", "bf16", "fp32")
    assert opts["--quiet"].dest == opts["--no-progress"].dest == "quiet"
    assert opts["--no-progress"].help == argparse.SUPPRESS  # the old spelling, hidden
    if path[0] != "viz":  # pictures read images one by one, without a data loader
        assert "--num-workers" in opts
    args = build_parser().parse_args([*path, *RUNNERS[path]])
    if path[0] == "pretrain":  # absent flags leave the config (whose defaults are the same)
        assert (args.device, args.precision, args.num_workers) == (None, None, None)
        assert runtime_overrides(args) == []
    else:
        assert (args.device, args.precision) == ("auto", "auto")
        assert getattr(args, "num_workers", -1) == -1
    assert not args.quiet
    for precision in ("auto", "bf16", "fp32"):
        given = build_parser().parse_args([*path, *RUNNERS[path], "--precision", precision])
        assert given.precision == precision
    assert build_parser().parse_args([*path, *RUNNERS[path], "--no-progress"]).quiet


@pytest.mark.parametrize("path", WITH_MODEL, ids="-".join)
def test_same_model_flags_on_every_command(path):
    opts = options(subparser(path))
    assert {"--weights", "--student", "--no-pretrained"} <= opts.keys()


def test_pretrain_flags_become_config_overrides():
    argv = ["pretrain", "imgs", "train.epochs=2", "--quiet", "--precision", "fp32"]
    args = build_parser().parse_args([*argv, "--device", "cpu", "--num-workers", "0"])
    assert runtime_overrides(args) == [
        "train.device=cpu", "train.precision=fp32", "train.progress=false", "data.num_workers=0"
    ]  # fmt: skip


def test_runtime_resolves_auto():
    args = build_parser().parse_args(["extract", "m", "imgs", "--out", "f.npy", "--quiet"])
    rt = runtime(args)
    assert rt.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert rt.precision == "auto" and not rt.progress and rt.num_workers >= 0


def test_quiet_silences_progress_bars(run_dir, folders, capsys):
    argv = ["eval", "knn", str(run_dir), "--train", str(folders / "train"), "--val",
            str(folders / "val"), "--k", "1", "--num-workers", "0", "--no-cache"]  # fmt: skip
    assert main(argv) == 0
    assert "batch" in capsys.readouterr().err  # tqdm: "... 1/1 [00:00<00:00, ...batch/s]"
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_resolver_reads_a_run_its_teacher_file_and_hub_names(run_dir):
    cfg = load_saved_config(run_dir / "config.yaml")
    cfg.data.mean, cfg.data.std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]  # not ImageNet's
    save_config(cfg, run_dir / "config.yaml")
    run = resolve_model(run_dir)
    assert run.run_dir == run_dir and run.image_size == 32
    assert run.mean == (0.5,) * 3 and run.std == (0.25,) * 3
    teacher = resolve_model(run_dir / "teacher_backbone.safetensors")
    assert teacher.run_dir == run_dir and teacher.mean == run.mean and teacher.image_size == 32
    x = torch.randn(1, 3, 48, 48)  # not the native 32: the run's own pos-embed rule
    with torch.no_grad():
        assert torch.equal(run.model(x), teacher.model(x))
    hub = resolve_model("dino_vits8", pretrained=False)
    assert (hub.mean, hub.std, hub.image_size, hub.run_dir) == (
        IMAGENET_MEAN, IMAGENET_STD, 224, None
    )  # fmt: skip
    with pytest.raises(ValueError, match="--weights goes with a hub name"):
        resolve_model(run_dir, weights="x.pth")


def test_resolver_hub_name_with_offline_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(load("dinov2_vits14", pretrained=False).state_dict(), path)
    got = resolve_model("dinov2_vits14", weights=str(path))
    assert got.image_size == 224 and got.mean == IMAGENET_MEAN
    assert torch.equal(got.model.pos_embed, torch.load(path)["pos_embed"])


def test_resolver_reads_a_runs_student_with_the_runs_config(run_dir, backbone):
    """The checkpoint's shapes do not give the heads: the student is built from config.yaml."""
    student = {k: v + 1 for k, v in backbone.state_dict().items()}
    model = {f"teacher.backbone.{k}": v for k, v in backbone.state_dict().items()}
    model.update({f"student.backbone.{k}": v for k, v in student.items()})
    torch.save({"model": model, "epoch": 1}, run_dir / "checkpoint.pth")
    got = resolve_model(run_dir, student=True).model
    assert got.num_heads == backbone.num_heads == 2  # a raw file would read 32 // 64 -> 1
    assert all(torch.equal(v, student[k]) for k, v in got.state_dict().items())
    teacher = resolve_model(run_dir / "checkpoint.pth")
    assert teacher.run_dir == run_dir and torch.equal(teacher.model.pos_embed, backbone.pos_embed)
