"""`dinolab eval knn | fewshot | linear | logreg` on a run directory and on a hub model."""

import json

import pytest
import torch

from dinolab.cli import build_parser
from dinolab.hub import load


def run_cli(argv: list[str]) -> int:
    """The command itself, without main()'s one-line errors: exceptions reach the test."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def common(run_dir, folders, *extra):
    return [
        "--run",
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
