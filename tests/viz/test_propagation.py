"""Frames with propagated masks: the overlay colours objects only, the grid is written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dinolab.eval.davis_data import davis_palette
from dinolab.viz.propagation import mask_overlay, propagation_figure


def test_overlay_colours_objects_and_outlines_them():
    rgb = np.full((10, 12, 3), 100, dtype=np.uint8)
    labels = np.zeros((10, 12), dtype=np.uint8)
    labels[2:8, 3:9] = 1
    out = mask_overlay(rgb, labels, davis_palette())
    assert out[0, 0].tolist() == [100, 100, 100]  # background untouched
    assert out[2, 3].tolist() == [255, 0, 0]  # outline: object 1's hue at full value
    assert out[4, 5].tolist() == [177, 50, 50]  # inside: half and half (177.5 truncated)
    with pytest.raises(ValueError, match="differ in size"):
        mask_overlay(rgb, labels[:5], davis_palette())


def test_figure_has_a_row_per_video(tmp_path):
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    lab = np.zeros((20, 40), dtype=np.uint8)
    frames = {"a": 3, "b": 2}
    videos = [{"name": n, "frames": [(t, rgb, lab) for t in range(k)]} for n, k in frames.items()]
    out = propagation_figure(videos, davis_palette(), tmp_path / "f.png", title="J&F")
    w, h = Image.open(out).size
    assert w > h > 50
    with pytest.raises(ValueError, match="no videos"):
        propagation_figure([], davis_palette(), tmp_path / "g.png")
