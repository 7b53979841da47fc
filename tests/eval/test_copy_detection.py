"""Copy detection: pairs files, top-k AP per block by hand, and a run on a generated set."""

import json

import pytest
import torch

from dinolab.eval.copy_detection import copy_detection_scores, read_pairs, run_copydetect
from dinolab.eval.copy_set import make_copy_set
from tests.train.conftest import make_images


def test_pairs_from_csv_and_json(tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "query,original,block\nq1.jpg,a.jpg,strong\nq1.jpg,b.jpg,strong\nq2.jpg,a.jpg,\n"
    )
    pairs = read_pairs(csv)
    assert pairs == {
        "q1.jpg": {"originals": ["a.jpg", "b.jpg"], "block": "strong"},
        "q2.jpg": {"originals": ["a.jpg"], "block": "all"},
    }
    js = tmp_path / "pairs.json"
    js.write_text(json.dumps([{"query": "q1.jpg", "originals": ["a.jpg", "b.jpg"]}]))
    assert read_pairs(js)["q1.jpg"]["originals"] == ["a.jpg", "b.jpg"]
    js.write_text(json.dumps([{"query": "q1.jpg"}]))
    with pytest.raises(ValueError, match="row 1 needs a query and an original"):
        read_pairs(js)
    with pytest.raises(FileNotFoundError, match="Pairs file"):
        read_pairs(tmp_path / "none.csv")


def test_scores_per_block_from_top_k():
    database = torch.eye(3)
    queries = torch.tensor([[1.0, 0, 0], [0, 1.0, 0.5], [0, 0, 1.0]])
    positives, blocks = [[0], [2], [2]], ["strong", "jpeg", "jpeg"]
    result = copy_detection_scores(queries, database, positives, blocks, topk=20)
    # q1 finds its original at rank 1: (0/1 + 1/2) / 2 = 0.25
    assert result["ap_per_query"] == pytest.approx([100.0, 25.0, 100.0])
    assert result["headline"] == "strong" and result["mAP"] == 100.0
    assert result["blocks"]["jpeg"] == {"mAP": pytest.approx(62.5), "n_queries": 2}
    assert result["topk"] == 3  # capped at the database size
    top1 = copy_detection_scores(queries, database, positives, blocks, topk=1)
    assert top1["ap_per_query"] == pytest.approx([100.0, 0.0, 100.0])  # rank 1 is beyond k


@pytest.fixture(scope="module")
def copy_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("copyset")
    make_images(root / "src", n=10, size=32, seed=5)
    make_copy_set(root / "src", root / "set", n_originals=2, n_distractors=3, n_whiten=5,
                  strong_per_original=1, progress=False)  # fmt: skip
    return root / "set"


@pytest.mark.parametrize("dino_compat", [False, True])
def test_run_on_a_generated_set(backbone, copy_set, tmp_path, dino_compat):
    result = run_copydetect(
        backbone, copy_set / "db", copy_set / "queries", copy_set / "pairs.csv",
        whiten_root=copy_set / "whiten", dino_compat=dino_compat, imsize=32,
        out_dir=tmp_path, precision="fp32", progress=False,
    )  # fmt: skip
    assert result["n_db"] == 5 and result["n_queries"] == 2 * 19
    assert result["headline"] == "strong" and len(result["blocks"]) == 19
    assert ("uncentred covariance (DINO)" in result["whitening"]) == dino_compat
    assert "centred covariance" in result["whitening"]
    table = (tmp_path / "copydetect.md").read_text()
    assert table.index("| strong |") < table.index("| jpegqual/3 |")


def test_missing_original_is_one_sentence(backbone, copy_set, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,original\nstrong/0000_0.jpg,originals/9999.jpg\n")
    with pytest.raises(ValueError, match="Original 'originals/9999.jpg' of query"):
        run_copydetect(backbone, copy_set / "db", copy_set / "queries", pairs, progress=False)
