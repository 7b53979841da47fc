from types import SimpleNamespace

import pytest
import torch

from dinolab.config.schema import DataConfig, EvalConfig
from dinolab.eval.online import OnlineKNN
from tests.eval.conftest import tiny_vit


def eval_cfg(folders, **kw):
    cfg = EvalConfig(train=str(folders / "train"), val=str(folders / "val"), k=[1, 20])
    cfg.image_size = 32  # a whole Config resolves 0 to data.global_size; a bare group cannot
    # the online keys may or may not be in the schema yet: set them either way
    return SimpleNamespace(**{**vars(cfg), "every_epochs": 2, "student": True, **kw})


def test_online_knn_teacher_and_student(folders):
    data = DataConfig(global_size=32, num_workers=0)
    knn = OnlineKNN(eval_cfg(folders, max_train_images=8), data, "cpu", "fp32")
    assert [knn.due(e) for e in range(5)] == [False, False, True, False, True]
    teacher, student = tiny_vit(), tiny_vit().train()
    out = knn.run(teacher, student)
    assert {"teacher_k1_top1", "teacher_k20_top5", "student_k20_top1"} <= set(out)
    assert 0.0 <= out["teacher_k20_top1"] <= 100.0
    assert out["teacher_k1_top1"] == out["student_k1_top1"]  # same weights, drop-path off
    assert student.training and not teacher.training  # modes are restored
    assert len(knn._images["train"][1]) == 8 and len(knn._images["val"][1]) == 6
    cached = knn._images["train"][0]
    knn.run(teacher)
    assert knn._images["train"][0] is cached  # decoded once per run


def test_online_knn_checks_folders_when_built(folders):
    (folders / "val" / "b").rename(folders / "val" / "c")
    with pytest.raises(ValueError, match="differ from training classes"):
        OnlineKNN(eval_cfg(folders), DataConfig(), "cpu", "fp32")
    off = OnlineKNN(SimpleNamespace(**vars(EvalConfig())), DataConfig(), "cpu", "fp32")
    assert not off.due(10)


def test_online_knn_sees_the_configured_view(folders):
    data = DataConfig(global_size=32, num_workers=0)
    whole = OnlineKNN(eval_cfg(folders, resize_ratio=1.0), data, "cpu", "fp32")
    centre = OnlineKNN(eval_cfg(folders, resize_ratio=2.0), data, "cpu", "fp32")
    a, b = whole._decoded("val")[0], centre._decoded("val")[0]
    assert a.shape == b.shape == (6, 3, 32, 32)
    # The 2x crop is the middle of the whole frame, enlarged: its centre pixels are close to
    # the whole frame's middle ones, and the two views differ.
    assert not torch.equal(a, b)
    assert (a[..., 12:20, 12:20].float().mean() - b[..., 8:24, 8:24].float().mean()).abs() < 8
