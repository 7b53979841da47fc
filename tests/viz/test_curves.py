import json
import math

import pytest
from PIL import Image

from dinolab.viz.curves import plot_training_curves


def test_curves_png_opens(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    rows = [
        {"step": i, "loss": 5 - i / 50, "teacher_entropy": 4.0, "kl": 1 / (i + 1), "lr": 1e-3}
        for i in range(120)
    ]
    metrics.write_text("\n".join(json.dumps(r) for r in rows))
    plain = plot_training_curves(metrics, tmp_path / "plain.png", out_dim=math.e**4)
    rows += [
        {"step": 60, "knn/teacher_k20_top1": 40.0},
        {"step": 120, "knn/teacher_k20_top1": 55.0},
    ]
    metrics.write_text("\n".join(json.dumps(r) for r in rows))
    with_knn = plot_training_curves(metrics, tmp_path / "curves.png", out_dim=math.e**4)
    with Image.open(plain) as a, Image.open(with_knn) as b:
        assert a.size[0] > 1000 and a.size[1] > 200
        assert b.size[0] > a.size[0]  # the k-NN panel is added beside the four curves


def test_no_steps_is_a_clear_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="No training steps"):
        plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "c.png")
