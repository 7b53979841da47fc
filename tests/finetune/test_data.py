import pytest

from dinolab.finetune.data import labelled_splits
from tests.finetune.conftest import colour_images, make_folders


def test_class_folders_differ_between_train_and_val(tmp_path):
    train, val = make_folders(tmp_path)
    colour_images(val / "blue", 2, 2, seed=5)
    with pytest.raises(ValueError, match=r"^Validation classes differ from training classes") as e:
        labelled_splits(str(train), str(val), None, None)
    assert "only in val: ['blue']" in str(e.value) and "\n" not in str(e.value)


def test_a_single_class_is_refused(tmp_path):
    train, val = make_folders(tmp_path, classes=("red",))
    with pytest.raises(ValueError, match="single class folder") as e:
        labelled_splits(str(train), str(val), None, None)
    assert "\n" not in str(e.value)


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(ValueError, match="--train DIR and --val DIR"):
        labelled_splits("", "", None, None)
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        labelled_splits(str(tmp_path / "nowhere"), str(tmp_path), None, None)
