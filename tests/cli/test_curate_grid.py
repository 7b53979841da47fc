"""`dinolab curate embed --descriptor grid` and `curate dedup --whiten` from the command line."""

import json

import pytest

from dinolab.cli import main
from tests.train.conftest import make_images


def _report(path):
    return json.loads((path / "report.json").read_text())


def test_grid_descriptor_and_whitened_dedup(capsys, tmp_path, run_dir):
    pool = make_images(tmp_path / "pool", n=12)
    common = ["--device", "cpu", "--precision", "fp32", "--num-workers", "0", "--quiet"]
    for images, out in ((pool, "emb"), (make_images(tmp_path / "sep", n=12, seed=1), "sep")):
        argv = ["curate", "embed", str(run_dir), str(images), "--out", str(tmp_path / out)]
        assert main([*argv, "--descriptor", "grid", "--layers", "1", "--cells", "2", *common]) == 0
    emb = _report(tmp_path / "emb")
    assert emb["descriptor"] == "grid" and emb["layers"] == [1] and emb["cells"] == 2
    argv = ["curate", "dedup", str(tmp_path / "emb"), "--threshold", "0.99", "--k", "4",
            "--whiten", "4", "--whiten-on", str(tmp_path / "sep"), "--out", str(tmp_path / "dd"),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    dd = _report(tmp_path / "dd")
    assert dd["whiten_dims"] == 4 and dd["whiten_on"] == str(tmp_path / "sep")
    assert (tmp_path / "dd" / "whitening.pt").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["curate", "dedup", str(tmp_path / "emb"), "--whiten", "some", "--out", "x"])
    assert "give dimensions to keep, or all" in capsys.readouterr().err
