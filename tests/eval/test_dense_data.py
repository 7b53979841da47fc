import json

import numpy as np
import pytest
from PIL import Image

from dinolab.eval import dense_data as data
from tests.eval.dense_sets import make_depth_set, make_segmentation_set


def test_segmentation_pairs_classes_and_masks(tmp_path):
    root = make_segmentation_set(tmp_path / "s", n=3)
    pairs = data.segmentation_pairs(root)
    assert [p[0].name for p in pairs] == ["im0.png", "im1.png", "im2.png"]
    assert data.count_classes(pairs) == 3
    assert data.class_names([root], 3) == ["0", "1", "2"]
    (root / "classes.json").write_text(json.dumps(["bg", "grass", "sky"]))
    assert data.class_names([root], 3) == ["bg", "grass", "sky"]
    mask = data.read_mask(pairs[0][1], (32, 32), 3)
    assert mask.dtype == np.uint8 and mask[-1, -1] == 255


def test_bad_segmentation_inputs_are_one_sentence(tmp_path):
    root = make_segmentation_set(tmp_path / "s", n=2)
    mask = root / "masks" / "im0.png"
    with pytest.raises(ValueError, match="is 32x32 but its image is 40x32"):
        data.read_mask(mask, (32, 40), 3)
    labels = np.array(Image.open(mask))
    labels[0, 0] = 5
    Image.fromarray(labels, mode="L").save(mask)
    with pytest.raises(ValueError, match="uses class index 5, but there are 3 classes"):
        data.read_mask(mask, (32, 32), 3)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(mask)
    with pytest.raises(ValueError, match="RGB image: save class indices"):
        data.read_mask(mask, (32, 32), 3)
    (root / "masks" / "im1.png").unlink()
    with pytest.raises(FileNotFoundError, match="No mask for 'im1.png'"):
        data.segmentation_pairs(root)
    (root / "classes.json").write_text(json.dumps(["only"]))
    with pytest.raises(ValueError, match="names 1 classes"):
        data.class_names([root], 3)


def test_depth_from_npy_metres_and_png_millimetres(tmp_path):
    a = make_depth_set(tmp_path / "a", n=2)
    b = make_depth_set(tmp_path / "b", n=2, png=True)
    (_, npy), (_, png) = data.depth_pairs(a)[0], data.depth_pairs(b)[0]
    da, db = data.read_depth(npy, (32, 32)), data.read_depth(png, (32, 32))
    assert da.dtype == np.float32 and np.abs(da - db).max() < 1e-3  # mm rounding


def test_bad_depth_inputs_are_one_sentence(tmp_path):
    root = make_depth_set(tmp_path / "d", n=2)
    (root / "depth" / "im1.npy").unlink()
    with pytest.raises(FileNotFoundError, match="No depth map for 'im1.png'"):
        data.depth_pairs(root)
    with pytest.raises(ValueError, match="has shape \\(32, 32\\) but its image is 16x32"):
        data.read_depth(root / "depth" / "im0.npy", (16, 32))
    with pytest.raises(FileNotFoundError, match="No images/ folder"):
        data.depth_pairs(tmp_path)
