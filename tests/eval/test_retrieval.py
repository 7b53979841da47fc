"""Retrieval: hand-made descriptors with known rankings, and a tiny set with query boxes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.eval.retrieval import rank_database, retrieval_scores, run_retrieval
from dinolab.eval.retrieval_gt import parse_ground_truth
from tests.train.conftest import make_images

KW = {"precision": "fp32", "progress": False}


def test_scores_on_hand_made_descriptors():
    database = torch.eye(4)
    queries = torch.tensor([[4.0, 3, 2, 1], [4.0, 3, 2, 1]])  # ranking 0, 1, 2, 3 for both
    assert rank_database(queries, database).tolist() == [[0, 1, 2, 3]] * 2
    gt = parse_ground_truth(
        {
            "imlist": list("abcd"),
            "qimlist": ["q0", "q1"],
            "gnd": [{"easy": [1], "hard": [2], "junk": [0]}, {"easy": [3], "hard": [], "junk": []}],
        }
    )
    result = retrieval_scores(queries, database, gt)
    # q0: junk 0 removed, positives at 0 and 1 -> AP 1 (Medium), hard 2 alone at 0 -> 1 (Hard)
    # q1: one positive at rank 3 -> (0/3 + 1/4) / 2 = 0.125 (Medium); no hard positive
    assert result["medium"]["ap_per_query"] == pytest.approx([100.0, 12.5])
    assert result["medium"]["mAP"] == pytest.approx(56.25)
    assert result["hard"]["ap_per_query"] == [100.0, None]
    assert result["hard"]["mAP"] == 100.0 and result["hard"]["n_queries_scored"] == 1
    assert result["medium"]["mP@1"] == pytest.approx(50.0)  # q0 hit at 1, q1 missed
    with pytest.raises(ValueError, match="3 query and 4 database descriptors"):
        retrieval_scores(torch.rand(3, 4), database, gt)


@pytest.fixture
def boxed_set(tmp_path):
    """db: 5 images; q0 = db image 0 inside a larger noisy canvas (box), q1 = db image 3."""
    db = make_images(tmp_path / "db", n=5, size=32, seed=3)
    queries = tmp_path / "queries"
    queries.mkdir()
    canvas = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    canvas[16:48, 16:48] = np.asarray(Image.open(db / "img_000.png"))
    Image.fromarray(canvas).save(queries / "q0.png")
    Image.open(db / "img_003.png").save(queries / "q1.png")
    gt = {
        "imlist": [f"img_{i:03d}" for i in range(5)],
        "qimlist": ["q0", "q1"],
        "gnd": [
            {"easy": [0], "hard": [], "junk": [1], "bbx": [16, 16, 48, 48]},
            {"easy": [], "hard": [3], "junk": [], "bbx": [0, 0, 32, 32]},
        ],
    }
    (tmp_path / "gnd.json").write_text(json.dumps(gt))
    return tmp_path


def test_cropped_queries_find_their_image_first(backbone, boxed_set):
    root = boxed_set
    result = run_retrieval(
        backbone, root / "db", root / "queries", root / "gnd.json", imsize=32,
        crop_queries=True, out_dir=root / "out", **KW,
    )  # fmt: skip
    assert result["medium"]["ap_per_query"] == [100.0, 100.0]
    assert result["hard"]["ap_per_query"] == [None, 100.0]
    assert result["query_images"].startswith("cropped to their box")
    saved = json.loads((root / "out" / "retrieval.json").read_text())
    assert saved["medium"]["mAP"] == 100.0 and saved["n_db"] == 5
    assert "cropped to their box" in (root / "out" / "retrieval.md").read_text()


def test_full_queries_say_so_and_multiscale_runs(backbone, boxed_set):
    root = boxed_set
    result = run_retrieval(
        backbone, root / "db", root / "queries", root / "gnd.json", imsize=32, multiscale=True,
        **KW,
    )  # fmt: skip
    assert result["query_images"].startswith("full images, not cropped (DINO's setting")
    assert result["multiscale"] and 0 <= result["medium"]["mAP"] <= 100


def test_crop_queries_needs_every_box(backbone, boxed_set):
    gt = json.loads((boxed_set / "gnd.json").read_text())
    del gt["gnd"][1]["bbx"]
    (boxed_set / "nobox.json").write_text(json.dumps(gt))
    with pytest.raises(ValueError, match="needs a bbx for every query"):
        run_retrieval(backbone, boxed_set / "db", boxed_set / "queries", boxed_set / "nobox.json",
                      crop_queries=True, **KW)  # fmt: skip
