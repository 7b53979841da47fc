"""train.entry: `dinolab.train(...)` arguments as config overrides (runs: tests/test_api.py)."""

from pathlib import Path

import pytest

from dinolab.train.entry import _plain, dotted, train


def test_nested_and_dotted_keys_become_dotted_overrides():
    values = {"optim": {"base_lr": 1e-3, "betas": (0.9, 0.99)}, "train.epochs": 5, "seed": 1}
    assert dotted(values) == {
        "optim.base_lr": 1e-3,
        "optim.betas": (0.9, 0.99),
        "train.epochs": 5,
        "seed": 1,
    }
    assert dotted({}) == {}


def test_python_values_are_made_yaml_friendly():
    assert _plain(Path("/data/x")) == "/data/x"
    assert _plain((0.5, [Path("a"), 2])) == [0.5, ["a", 2]]
    assert _plain(3) == 3 and _plain("s") == "s"


def test_resume_without_a_run_directory_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=r"resume=True continues a run: give its directory"):
        train(tmp_path, resume=True)
