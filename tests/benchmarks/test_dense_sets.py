import json

import numpy as np
from PIL import Image

from benchmarks import dense_sets
from dinolab.eval.dense_data import count_classes, depth_pairs, read_depth, segmentation_pairs


def test_raycast_depth_is_the_exact_distance_along_the_view_axis(tmp_path):
    rng = np.random.default_rng(0)
    rgb, depth = dense_sets._render(rng, 32, 10.0)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    assert ((depth > 0) & (depth <= 10.0)).all()  # every ray meets the floor or a wall
    # the bottom row looks down at the ground plane y = -h: depth = h / (-y direction)
    rng = np.random.default_rng(0)
    h = rng.uniform(0.8, 1.6)
    f = 32 / (2 * np.tan(np.radians(30)))
    ground = h / ((31.5 - 16) / f)
    assert (np.isclose(depth[-1], ground, rtol=1e-5) | (depth[-1] < ground)).all()
    assert np.isclose(depth[-1], ground, rtol=1e-5).any()
    root = dense_sets.raycast_depth(tmp_path / "d", n_train=2, n_val=1, size=32)
    img, d = depth_pairs(root / "train")[0]
    assert read_depth(d, (32, 32)).max() <= 10.0


def test_cut_paste_masks_hold_the_pasted_classes(tmp_path):
    root = dense_sets.cut_paste(tmp_path / "s", n_train=6, n_val=2, size=32)
    pairs = segmentation_pairs(root / "train")
    assert len(pairs) == 6 and count_classes(pairs) <= 4
    assert json.loads((root / "train" / "classes.json").read_text())[0] == "background"
    mask = np.asarray(Image.open(pairs[0][1]))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1, 2, 3}
