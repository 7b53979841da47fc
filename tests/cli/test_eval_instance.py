"""`dinolab eval retrieval | copydetect | copyset` on a run directory, and their one-line errors."""

import json
import pickle

from dinolab.cli import build_parser, main
from tests.train.conftest import make_images

RUNTIME = ["--precision", "fp32", "--num-workers", "0", "--quiet"]


def run_cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def _retrieval_set(root):
    make_images(root / "db", n=4, size=32, seed=2)
    gt = {
        "imlist": [f"img_{i:03d}" for i in range(4)],
        "qimlist": ["img_001"],
        "gnd": [{"easy": [1], "hard": [], "junk": [], "bbx": [0, 0, 32, 32]}],
    }
    (root / "gnd.json").write_text(json.dumps(gt))


def test_retrieval_command(run_dir, tmp_path, capsys):
    _retrieval_set(tmp_path)
    argv = ["eval", "retrieval", str(run_dir), "--db", str(tmp_path / "db"), "--gt",
            str(tmp_path / "gnd.json"), "--imsize", "32", "--crop-queries", *RUNTIME]  # fmt: skip
    assert run_cli(argv) == 0
    result = json.loads((run_dir / "retrieval.json").read_text())
    assert result["medium"]["mAP"] == 100.0  # the query is its own database image
    assert result["hard"]["mAP"] is None  # no hard positive in this set: shown as "-"
    out = capsys.readouterr().out
    assert "cropped to their box" in out and "| Hard | - | - |" in out
    assert (run_dir / "feature_cache").is_dir()


def test_copyset_then_copydetect(run_dir, tmp_path, capsys):
    make_images(tmp_path / "src", n=6, size=32, seed=4)
    out = tmp_path / "set"
    argv = ["eval", "copyset", str(tmp_path / "src"), str(out), "--originals", "1",
            "--distractors", "2", "--whiten", "3", "--strong", "1", "--quiet"]  # fmt: skip
    assert run_cli(argv) == 0
    assert "dinolab eval copydetect MODEL" in capsys.readouterr().out
    argv = ["eval", "copydetect", str(run_dir), "--db", str(out / "db"), "--queries",
            str(out / "queries"), "--pairs", str(out / "pairs.csv"), "--whiten",
            str(out / "whiten"), "--imsize", "32", "--dino-compat", *RUNTIME]  # fmt: skip
    assert run_cli(argv) == 0
    result = json.loads((run_dir / "copydetect.json").read_text())
    assert result["n_queries"] == 19 and "uncentred covariance (DINO)" in result["whitening"]
    assert "| strong |" in capsys.readouterr().out


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_malicious_ground_truth_is_one_line(run_dir, tmp_path, capsys):
    _retrieval_set(tmp_path)
    (tmp_path / "gnd_x.pkl").write_bytes(pickle.dumps({"gnd": _Evil()}))
    code = main(["eval", "retrieval", str(run_dir), "--db", str(tmp_path / "db"),
                 "--gt", str(tmp_path / "gnd_x.pkl"), *RUNTIME])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and "pwned" not in captured.out
    assert captured.err.count("\n") == 1 and "not a plain-data pickle" in captured.err
