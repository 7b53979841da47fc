"""`dinolab eval knn | fewshot | linear | logreg MODEL`: run directory, weights file, hub name."""

import json

import pytest
import torch

from dinolab.cli import build_parser, main
from dinolab.hub import load
from tests.cli.test_options import subparser


def run_cli(argv: list[str]) -> int:
    """The command itself, without main()'s one-line errors: exceptions reach the test."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def common(run_dir, folders, *extra):
    return [
        str(run_dir),
        "--train",
        str(folders / "train"),
        "--val",
        str(folders / "val"),
        "--precision",
        "fp32",
        "--num-workers",
        "0",
        "--batch-size",
        "4",
        "--no-progress",
        *extra,
    ]


def test_linear_command_writes_json_and_markdown(run_dir, folders, capsys):
    argv = ["eval", "linear", *common(run_dir, folders, "--epochs", "1", "--lr", "0.1", "1")]
    assert run_cli(argv) == 0
    out = capsys.readouterr().out
    result = json.loads((run_dir / "linear.json").read_text())
    assert result["mode"] == "full" and len(result["heads"]) == 4 * 2  # {1,2} x avgpool x 2 lrs
    assert result["best"]["head"] in result["heads"] and result["n_val"] == 6
    table = (run_dir / "linear.md").read_text()
    assert "**best:" in table and table in out
    assert (run_dir / "feature_cache").is_dir()


def test_other_protocols_share_the_cache(run_dir, folders, tmp_path, capsys):
    out = tmp_path / "results"
    for argv in (
        [
            "eval",
            "linear",
            *common(
                run_dir, folders, "--mode", "fast", "--epochs", "5", "--lr", "1", "--out", str(out)
            ),
        ],
        [
            "eval",
            "logreg",
            *common(run_dir, folders, "--C", "0.1", "1", "--max-iter", "20", "--out", str(out)),
        ],
        ["eval", "knn", *common(run_dir, folders, "--k", "1", "3", "--out", str(out))],
        [
            "eval",
            "fewshot",
            *common(run_dir, folders, "--shots", "2", "--tries", "2", "--out", str(out)),
        ],
    ):
        assert run_cli(argv) == 0
    for name in ("linear", "logreg", "knn", "fewshot"):
        assert (out / f"{name}.json").is_file() and (out / f"{name}.md").is_file()
    printed = capsys.readouterr().out
    assert "| 3 | " in printed and "| 2 | 20 |" in printed and "best C" in printed
    assert len(list((out / "feature_cache").iterdir())) == 4  # (train, val) x 2 variants


def test_run_without_teacher_is_a_clear_error(run_dir, folders):
    (run_dir / "teacher_backbone.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no teacher"):
        run_cli(["eval", "knn", *common(run_dir, folders)])


def test_hub_model_with_offline_weights(folders, tmp_path, monkeypatch, capsys):
    """The README's promise: eval takes hub names; --weights FILE reads published weights."""
    torch.manual_seed(0)
    weights = tmp_path / "dinov2_vits14_pretrain.pth"  # official layout, random values
    torch.save(load("dinov2_vits14", pretrained=False).state_dict(), weights)
    monkeypatch.chdir(tmp_path)
    argv = ["eval", "knn", *common("dinov2_vits14", folders, "--k", "1", "--image-size", "28")]
    assert run_cli([*argv, "--weights", str(weights)]) == 0
    out = tmp_path / "runs" / "eval-dinov2_vits14"  # no run directory: results go here
    assert json.loads((out / "knn.json").read_text())["n_val"] == 6
    assert "| 1 |" in capsys.readouterr().out


PRECISIONS = [("fp32", False, torch.float32), ("bf16", True, torch.bfloat16)]


@pytest.mark.parametrize(("flag", "autocast", "dtype"), PRECISIONS)
def test_eval_precision_flag_is_what_the_backbone_runs(
    run_dir, folders, tmp_path, monkeypatch, flag, autocast, dtype
):
    """`--precision fp32` (paper-comparable features): no autocast, float32 matmuls inside the
    backbone; bf16 turns autocast on (the spy sees the difference)."""
    import dinolab.eval.features as features

    seen = []
    real = features.backbone_tokens

    def spy(backbone, images, *a, **kw):
        block = backbone.blocks[0].attn.qkv
        hook = block.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        try:
            assert torch.is_autocast_enabled("cpu") is autocast
            return real(backbone, images, *a, **kw)
        finally:
            hook.remove()

    monkeypatch.setattr(features, "backbone_tokens", spy)
    argv = ["eval", "knn", *common(run_dir, folders, "--k", "1", "--no-cache")]
    argv[argv.index("--precision") + 1] = flag
    assert run_cli([*argv, "--out", str(tmp_path / flag)]) == 0
    assert seen and set(seen) == {dtype}


def test_model_is_positional_and_a_weights_file_works(run_dir, folders, tmp_path, capsys):
    """MODEL comes first, as in extract / export / viz; a lone weights file writes beside it."""
    weights = tmp_path / "alone" / "teacher.safetensors"
    weights.parent.mkdir()
    (run_dir / "teacher_backbone.safetensors").rename(weights)
    argv = ["eval", "knn", *common(weights, folders, "--k", "1", "--no-cache")]
    assert build_parser().parse_args(argv).model == str(weights)
    assert run_cli(argv) == 0
    assert json.loads((weights.parent / "knn.json").read_text())["n_val"] == 6


def test_run_flag_still_works_with_one_warning(run_dir, folders, tmp_path, caplog):
    argv = ["eval", "knn", "--run", str(run_dir), *common(run_dir, folders, "--k", "1")[1:]]
    with caplog.at_level("WARNING", logger="dinolab"):
        assert run_cli([*argv, "--no-cache", "--out", str(tmp_path / "r")]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "--run / --model is deprecated" in warned[0]
    assert (tmp_path / "r" / "knn.json").is_file()
    usage = subparser(("eval", "knn")).format_help()
    assert "--run" not in usage and "MODEL" in usage  # the old spelling is hidden


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--k", "1"], "no MODEL given: name a run directory, weights file or hub name first"),
        (["--run", "other", "--k", "1"], "two models given"),
    ],
)
def test_model_missing_or_twice_is_one_sentence(run_dir, folders, capsys, argv, says):
    args = common(run_dir, folders, *argv)
    if "--run" not in argv:
        args = args[1:]  # no MODEL at all
    assert main(["eval", "knn", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dinolab: error: {says}") and err.count("\n") == 1


def test_hub_name_without_internet_is_one_sentence(folders, tmp_path, monkeypatch, capsys):
    """No network in tests: the download fails as it does offline, and says what to do."""
    from urllib.error import URLError

    def offline(url, dst, *a, **kw):
        raise URLError("no DNS")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "knn", *common("dino_vits16", folders, "--k", "1")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dinolab: error: Could not download https://dl.fbaipublicfiles.com/")
    assert "dino_deitsmall16_pretrain.pth" in err and "--weights" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing written before the model loaded


def test_classification_protocols_see_the_runs_view(folders, tmp_path, monkeypatch):
    import dinolab.eval.knn
    from dinolab.config.loader import load_config, save_config
    from dinolab.run_dir import export_teacher
    from tests.eval.conftest import TINY_MODEL, tiny_vit

    run = tmp_path / "whole_frame_run"
    run.mkdir()
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", "eval.resize_ratio=1.0"])
    save_config(cfg, run / "config.yaml")
    export_teacher(tiny_vit(), cfg, run)
    seen, extract = [], dinolab.eval.knn.extract_features
    monkeypatch.setattr(
        dinolab.eval.knn,
        "extract_features",
        lambda *a, **kw: seen.append(kw["resize_ratio"]) or extract(*a, **kw),
    )
    assert run_cli(["eval", "knn", *common(run, folders, "--k", "3", "--no-cache")]) == 0
    assert seen == [1.0, 1.0]  # memory bank and queries, as the run was evaluated in training
    result = json.loads((run / "knn.json").read_text())
    assert result["image_size"] == 32 and result["resize_ratio"] == 1.0  # the view is recorded
