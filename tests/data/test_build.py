"""data.build.require_readable: a dataset of which no file decodes is refused before a run."""

import pytest

from dinolab.data.build import build_dataset, require_readable
from tests.train.conftest import make_images


def test_a_folder_of_only_broken_files_is_refused_in_one_sentence(tmp_path):
    data = tmp_path / "broken"
    data.mkdir()
    for i in range(5):
        (data / f"img_{i}.jpg").write_text("not an image")
    (data / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"None of the 6 files of data.path") as err:
        require_readable(build_dataset(str(data)), str(data))
    assert "\n" not in str(err.value) and "empty.png: empty file (0 bytes)" in str(err.value)


def test_one_readable_file_is_enough_and_is_found_among_broken_ones(tmp_path):
    data = tmp_path / "mixed"
    data.mkdir()
    for i in range(4):
        (data / f"a_{i}.jpg").write_text("not an image")  # sorted before the good one
    make_images(data, n=1)
    ds = build_dataset(str(data))
    require_readable(ds, str(data))  # no error
    assert len(ds) == 5
