"""`dinolab curate embed | dedup | cluster | sample | retrieve` end to end on a tiny run."""

import json
import shutil

from dinolab.cli import main
from dinolab.data import build_dataset
from tests.train.conftest import make_images


def _report(path):
    return json.loads((path / "report.json").read_text())


def test_curate_pipeline_ends_in_a_list_pretrain_reads(capsys, tmp_path, run_dir):
    pool = make_images(tmp_path / "pool", n=24)
    shutil.copy(pool / "img_000.png", pool / "img_copy.png")
    seeds = make_images(tmp_path / "seeds", n=6, seed=1)
    common = ["--device", "cpu", "--precision", "fp32", "--num-workers", "0", "--quiet"]
    for images, out in ((pool, "emb"), (seeds, "emb_seeds")):
        argv = ["curate", "embed", str(run_dir), str(images), "--out", str(tmp_path / out)]
        assert main([*argv, "--chunk-size", "10", *common]) == 0
    assert _report(tmp_path / "emb")["embedded"] == 25
    argv = ["curate", "embed", str(run_dir), str(seeds), "--out", str(tmp_path / "gem")]
    assert main([*argv, "--descriptor", "cls+gem", *common]) == 0
    assert _report(tmp_path / "gem")["dim"] == 2 * _report(tmp_path / "emb")["dim"]
    steps = [
        ["dedup", str(tmp_path / "emb"), "--against", str(tmp_path / "emb_seeds"), "--k", "8",
         "--threshold", "0.9999", "--against-threshold", "0.9999"],  # a random tiny ViT
        ["cluster", str(tmp_path / "dd"), "--levels", "6,2", "--resample", "2", "--restarts", "1"],
        ["sample", str(tmp_path / "cl"), "--target", "5", "--strategy", "closest"],
        ["retrieve", str(tmp_path / "dd"), "--seeds", str(tmp_path / "emb_seeds"),
         "--per-seed", "2"],
        ["retrieve", "--clusters", str(tmp_path / "cl"), "--seeds", str(tmp_path / "emb_seeds"),
         "--min-seeds", "0", "--per-cluster", "3"],
    ]  # fmt: skip
    for step, out in zip(steps, ["dd", "cl", "smp", "ret", "retc"], strict=True):
        assert main(["curate", *step, "--out", str(tmp_path / out), "--quiet"]) == 0, step
    dd = _report(tmp_path / "dd")
    assert dd["exact_duplicates_removed"] == 1 and dd["images"] <= 24
    assert _report(tmp_path / "smp")["images"] == 5
    ret = _report(tmp_path / "ret")
    assert ret["images"] + ret["collisions"] == 12
    assert _report(tmp_path / "retc")["images"] >= 1
    listing = tmp_path / "smp" / "list.txt"
    assert len(build_dataset(str(listing))) == 5  # what `dinolab pretrain smp/list.txt` reads
    capsys.readouterr()


def test_curate_errors_are_one_line(capsys, tmp_path):
    assert main(["curate", "dedup", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "neither an embedding folder" in err and len(err.strip().splitlines()) == 1
    assert main(["curate", "sample", str(tmp_path), "--target", "3", "--out", "x"]) == 2
    assert "not a `dinolab curate cluster` folder" in capsys.readouterr().err
