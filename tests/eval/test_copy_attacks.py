"""The Copydays-like edits: sizes, areas, and exact repeats from a seed."""

import numpy as np
from PIL import Image

from dinolab.eval import copy_attacks as attacks


def _photo(w=60, h=40):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def test_jpeg_keeps_the_size_and_loses_detail():
    img = _photo()
    low, high = attacks.jpeg(img, 3), attacks.jpeg(img, 75)
    err = [np.abs(np.asarray(x, float) - np.asarray(img, float)).mean() for x in (low, high)]
    assert low.size == img.size and err[0] > err[1] > 0


def test_crop_removes_the_asked_share_of_the_surface():
    img = _photo(100, 80)
    for p in attacks.CROP_PERCENTS:
        w, h = attacks.crop_surface(img, p, np.random.default_rng(p)).size
        assert abs(w * h / (100 * 80) - (1 - p / 100)) < 0.03


def test_every_edit_repeats_from_its_seed():
    img = _photo()
    for name, edit in attacks.STRONG_EDITS.items():
        a, b = edit(img, np.random.default_rng(1)), edit(img, np.random.default_rng(1))
        assert _same(a, b), name
        assert not _same(a, img), name
    a, names, q = attacks.strong_attack(img, np.random.default_rng(2))
    b, names_b, q_b = attacks.strong_attack(img, np.random.default_rng(2))
    assert _same(a, b) and names == names_b and q == q_b
    assert len(set(names)) == 3 and 30 <= q <= 75


def test_print_scan_and_rotation_keep_the_size():
    img = _photo()
    assert attacks.print_scan(img, np.random.default_rng(0)).size == img.size
    assert attacks.rotate(img, np.random.default_rng(0)).size == img.size
