"""Reading a DAVIS folder as DINO does: sizes, annotations of both DAVIS years, the palette."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.eval import davis_data as data


def test_palette_is_the_davis_one_built_without_the_network():
    p = data.davis_palette()
    assert p.shape == (256, 3) and p.dtype == np.uint8
    assert p[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert p[8].tolist() == [64, 0, 0] and p[9].tolist() == [192, 0, 0]
    assert p[255].tolist() == [224, 224, 192]


@pytest.mark.parametrize(
    "hw,patch,expected",
    [
        ((480, 854), 16, (480, 832)),  # DINO: long side floored to a multiple of 64
        ((480, 854), 8, (480, 832)),
        ((854, 480), 16, (832, 480)),
        ((480, 854), 14, (476, 854)),  # 64 is no multiple of 14: the patch instead
    ],
)
def test_processing_size(hw, patch, expected):
    assert data.processing_size(*hw, size=480, patch=patch) == expected


def test_too_small_a_size_is_one_sentence():
    with pytest.raises(ValueError, match="at least 64"):
        data.processing_size(480, 854, size=8, patch=16)


def test_davis_2016_masks_are_one_object_and_2017_palettes_keep_indices(tmp_path):
    grey = np.zeros((4, 6), dtype=np.uint8)
    grey[1:3, 2:5] = 255
    Image.fromarray(grey).save(tmp_path / "2016.png")  # mode L, {0, 255}
    np.testing.assert_array_equal(data.read_annotation(tmp_path / "2016.png"), grey // 255)
    labels = np.array([[0, 1, 2], [2, 255, 0]], dtype=np.uint8)
    data.write_indexed_png(tmp_path / "2017.png", labels, data.davis_palette())
    assert Image.open(tmp_path / "2017.png").mode == "P"
    np.testing.assert_array_equal(data.read_annotation(tmp_path / "2017.png"), labels)


def test_seed_labels_are_one_hot_on_the_patch_grid_with_void_as_background():
    labels = np.zeros((16, 24), dtype=np.uint8)
    labels[8:16, 8:16] = 1
    labels[0:8, 0:8] = 255
    seed = data.seed_labels(labels, (2, 3), 2)
    assert seed.shape == (2, 2, 3)
    assert seed[1].tolist() == [[0, 0, 0], [0, 1, 0]] and torch.all(seed.sum(0) == 1)


def test_load_frame_resizes_and_normalises(tmp_path):
    Image.fromarray(np.full((20, 30, 3), 255, dtype=np.uint8)).save(tmp_path / "f.jpg")
    x, rgb = data.load_frame(tmp_path / "f.jpg", (16, 24), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (3, 16, 24) and rgb.shape == (20, 30, 3)
    assert torch.allclose(x, torch.ones_like(x), atol=0.02)


def test_missing_folders_and_sequences_are_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="No DAVIS folder"):
        data.list_sequences(tmp_path)
    (tmp_path / "JPEGImages" / "480p" / "cows").mkdir(parents=True)
    assert data.list_sequences(tmp_path) == ["cows"]
    with pytest.raises(ValueError, match=r"\['dogs'\] are not in"):
        data.list_sequences(tmp_path, ["dogs"])
    with pytest.raises(ValueError, match="no .jpg frames"):
        data.sequence_files(tmp_path, "cows")
    Image.new("RGB", (8, 8)).save(tmp_path / "JPEGImages" / "480p" / "cows" / "00000.jpg")
    with pytest.raises(FileNotFoundError, match="first-frame annotation"):
        data.sequence_files(tmp_path, "cows")
