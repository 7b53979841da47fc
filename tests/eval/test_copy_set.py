"""The Copydays-like set generator: layout, disjoint parts, exact rebuild from the seed."""

import csv
import json

import pytest

from dinolab.eval.copy_set import make_copy_set
from tests.train.conftest import make_images


@pytest.fixture
def source(tmp_path):
    return make_images(tmp_path / "src", n=8, size=32, seed=7)


def test_layout_pairs_and_disjoint_parts(source, tmp_path):
    out = tmp_path / "set"
    summary = make_copy_set(source, out, 2, 3, 2, strong_per_original=2, progress=False)
    rows = list(csv.DictReader((out / "pairs.csv").open()))
    assert len(rows) == summary["n_queries"] == 2 * (9 + 9 + 2)
    assert all((out / "queries" / r["query"]).is_file() for r in rows)
    assert all((out / "db" / r["original"]).is_file() for r in rows)
    assert {r["block"] for r in rows} >= {"strong", "jpegqual/3", "crops/80"}
    assert len(list((out / "db" / "distractors").iterdir())) == 3
    assert len(list((out / "whiten").iterdir())) == 2
    parts = summary["sources"]
    used = parts["originals"] + parts["distractors"] + parts["whiten"]
    assert len(set(used)) == 7  # no image in two parts
    assert json.loads((out / "copyset.json").read_text())["seed"] == 0


def test_same_seed_same_set(source, tmp_path):
    a = make_copy_set(source, tmp_path / "a", 1, 1, 1, seed=3, progress=False)
    b = make_copy_set(source, tmp_path / "b", 1, 1, 1, seed=3, progress=False)
    assert a["sources"] == b["sources"]
    for name in ("strong/0000_0.jpg", "crops/40/0000.jpg"):
        assert (tmp_path / "a/queries" / name).read_bytes() == (
            tmp_path / "b/queries" / name
        ).read_bytes()


def test_bad_requests_are_one_sentence(source, tmp_path):
    with pytest.raises(ValueError, match="has 8 images; 5 originals .* need 15"):
        make_copy_set(source, tmp_path / "x", 5, 5, 5, progress=False)
    make_copy_set(source, tmp_path / "y", 1, 1, 1, progress=False)
    with pytest.raises(FileExistsError, match="already holds a copy set"):
        make_copy_set(source, tmp_path / "y", 1, 1, 1, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_copy_set(tmp_path / "nowhere", tmp_path / "z", progress=False)
