"""`dinolab eval segment | depth MODEL`: a run directory's teacher on tiny generated sets."""

import json

from dinolab.cli import main
from tests.eval.dense_sets import make_depth_set, make_segmentation_set


def _argv(command, run_dir, tmp_path, *extra):
    return ["eval", command, str(run_dir), "--train", str(tmp_path / "train"), "--val",
            str(tmp_path / "val"), "--size", "32", "--steps", "5", "--precision", "fp32",
            "--device", "cpu", "--quiet", "--out", str(tmp_path / "out"), *extra]  # fmt: skip


def test_segment_command_writes_results_and_caches_features(run_dir, tmp_path, capsys):
    make_segmentation_set(tmp_path / "train", n=3, seed=0)
    make_segmentation_set(tmp_path / "val", n=2, seed=1)
    assert main(_argv("segment", run_dir, tmp_path, "--mode", "ms", "--train-scales", "1")) == 0
    assert "Linear segmentation (ms, 2 val images)" in capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "segment.json").read_text())
    assert result["params"]["blocks"] == 2  # the tiny ViT has 2 blocks: "last 4" takes both
    assert result["params"]["feature_dim"] == 2 * 32
    assert (tmp_path / "out" / "segment.png").is_file()
    assert len(list((tmp_path / "out" / "feature_cache").iterdir())) == 2  # train, val


def test_depth_command_and_its_one_sentence_errors(run_dir, tmp_path, capsys):
    make_depth_set(tmp_path / "train", n=2, seed=0)
    make_depth_set(tmp_path / "val", n=2, seed=1)
    assert main(_argv("depth", run_dir, tmp_path, "--mode", "lin4", "--no-cache")) == 0
    result = json.loads((tmp_path / "out" / "depth.json").read_text())
    assert result["params"]["blocks"] == [0, 1] and result["params"]["feature_dim"] == 4 * 32
    capsys.readouterr()
    (tmp_path / "val" / "depth" / "im1.npy").unlink()
    assert main(_argv("depth", run_dir, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("dinolab: error: No depth map for 'im1.png'") and "Traceback" not in err
