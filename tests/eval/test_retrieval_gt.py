"""Revisited ground truth from JSON and from a pickle, and the pickle that must not run."""

import json
import os
import pickle

import numpy as np
import pytest

from dinolab.eval.retrieval_gt import (
    image_paths,
    load_data_pickle,
    parse_ground_truth,
    read_ground_truth,
)

RAW = {
    "imlist": ["a", "b", "c", "d"],
    "qimlist": ["q0", "q1"],
    "gnd": [
        {"easy": [0], "hard": [1], "junk": [2], "bbx": [1.0, 2.0, 10.0, 12.0]},
        {"easy": [], "hard": ["d"], "junk": []},
    ],
}


def test_json_and_protocols(tmp_path):
    path = tmp_path / "gnd.json"
    path.write_text(json.dumps(RAW))
    gt = read_ground_truth(path)
    assert gt.db_names == ["a", "b", "c", "d"] and gt.query_names == ["q0", "q1"]
    assert gt.queries[0].box == (1.0, 2.0, 10.0, 12.0) and gt.queries[1].box is None
    ok, junk = gt.protocol("medium")
    assert ok[0].tolist() == [0, 1] and junk[0].tolist() == [2]
    ok, junk = gt.protocol("hard")
    assert ok[0].tolist() == [1] and sorted(junk[0].tolist()) == [0, 2]
    assert ok[1].tolist() == [3]  # a name resolves to its imlist index


@pytest.mark.parametrize("protocol", range(6))
def test_original_style_pickle_with_numpy_arrays(tmp_path, protocol):
    raw = {
        "imlist": RAW["imlist"],
        "qimlist": RAW["qimlist"],
        "gnd": [
            {"easy": np.array([0]), "hard": np.array([1]), "junk": np.array([2]),
             "bbx": np.array([1.0, 2.0, 10.0, 12.0])},
            {"easy": [], "hard": [np.int64(3)], "junk": []},
        ],
    }  # fmt: skip
    path = tmp_path / "gnd_test.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=protocol))
    gt = read_ground_truth(path)
    assert gt.queries[0].box == (1.0, 2.0, 10.0, 12.0)
    assert gt.protocol("medium")[0][1].tolist() == [3]


class _RunsCode:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    target = tmp_path / "created-by-the-pickle"
    path = tmp_path / "gnd_evil.pkl"
    path.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [_RunsCode(str(target))]}))
    with pytest.raises(ValueError, match="not a plain-data pickle.*mkdir"):
        read_ground_truth(path)
    assert not target.exists()
    path.write_bytes(pickle.dumps(eval))  # a bare global is refused as well
    with pytest.raises(ValueError, match="builtins.eval"):
        load_data_pickle(path)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"imlist": []}, "needs the keys"),
        ({**RAW, "gnd": RAW["gnd"][:1]}, "1 gnd entries for 2 queries"),
        ({**RAW, "gnd": [{"easy": [9]}, {}]}, r"gnd\[0\]\['easy'\] holds 9"),
        ({**RAW, "gnd": [{"hard": ["zz"]}, {}]}, "names 'zz'"),
        ({**RAW, "gnd": [{"bbx": [5, 5, 1, 1]}, {}]}, "not \\[x1, y1, x2, y2\\]"),
    ],
)
def test_bad_ground_truth_is_one_sentence(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_ground_truth(raw)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_ground_truth(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_ground_truth(tmp_path / "bad.json")


def test_image_paths_accept_the_revisited_layout(tmp_path):
    (tmp_path / "jpg").mkdir()
    for name in ("plain.png", "withext.jpg", "jpg/oxford_001.jpg"):
        (tmp_path / name).write_bytes(b"")
    paths = image_paths(tmp_path, ["plain.png", "withext", "oxford_001"])
    assert paths == [str(tmp_path / p) for p in ("plain.png", "withext.jpg", "jpg/oxford_001.jpg")]
    with pytest.raises(FileNotFoundError, match="Image 'nope' of the ground truth"):
        image_paths(tmp_path, ["nope"])
