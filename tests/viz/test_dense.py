import numpy as np

from dinolab.eval.davis_data import davis_palette
from dinolab.viz.dense import colour_labels, dense_figure


def test_colour_labels_paints_ignore_white():
    labels = np.array([[0, 1], [255, 2]], dtype=np.uint8)
    rgb = colour_labels(labels, davis_palette())
    assert rgb.shape == (2, 2, 3) and rgb[1, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == davis_palette()[1].tolist()


def test_dense_figure_writes_one_row_per_image(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    depth = np.linspace(1, 5, 64).reshape(8, 8)
    panels = [("image", rgb, None), ("gt", depth, None), ("pred", depth * 0.9, None)]
    rows = [{"name": f"im{i}", "panels": panels} for i in range(2)]
    path = dense_figure(rows, tmp_path / "d.png", "title")
    assert path.stat().st_size > 1000
