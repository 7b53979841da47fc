import torch

from dinolab.config.loader import load_config
from dinolab.eval.baselines import compare_with_baselines, raw_pixel_features
from dinolab.eval.logreg import logreg_holdout

from .conftest import TINY_MODEL


def test_raw_pixels_are_centred_unit_vectors(folders):
    out = raw_pixel_features(folders / "train", size=8)
    assert out["features"].shape == (12, 8 * 8 * 3)
    assert out["classes"] == ["a", "b"] and out["labels"].tolist() == [0] * 6 + [1] * 6
    assert torch.allclose(out["features"].norm(dim=1), torch.ones(12), atol=1e-5)
    assert out["features"].mean(dim=1).abs().max() < 1e-6


def test_holdout_logreg_separates_and_picks_c_on_train_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()
    train = {"features": x[:150], "labels": y[:150], "classes": ["neg", "pos"]}
    test = {"features": x[150:], "labels": y[150:], "classes": ["neg", "pos"]}
    out = logreg_holdout(train, test)
    assert out["top1"] >= 95.0 and out["C"] > 0


def test_compare_scores_all_three(folders, backbone):
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", "train.precision=fp32"])
    out = compare_with_baselines(cfg, backbone, folders / "train", folders / "val", k=3,
                                 progress=False, num_workers=0)  # fmt: skip
    assert set(out) == {"raw pixels", "random init", "trained"}
    for s in out.values():
        assert 0.0 <= s["knn_top1"] <= s["knn_top5"] <= 100.0
        assert 0.0 <= s["linear_top1"] <= 100.0


def _framed(path, size=(32, 32)):
    """A grey photo with a 4 px black border: the 2x centre crop cuts it away, the whole frame
    keeps it."""
    from PIL import Image, ImageOps

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    ImageOps.expand(Image.new("RGB", (w - 8, h - 8), (128, 128, 128)), 4, (0, 0, 0)).save(path)


def test_raw_pixels_see_the_backbones_view(tmp_path):
    _framed(tmp_path / "a" / "square.png")
    _framed(tmp_path / "a" / "wide.png", size=(64, 32))
    whole = raw_pixel_features(tmp_path, size=16, resize_ratio=1.0)["features"]
    cropped = raw_pixel_features(tmp_path, size=16, resize_ratio=2.0)["features"]
    assert torch.allclose(whole.norm(dim=1), torch.ones(2), atol=1e-5)  # the border is seen
    assert cropped.abs().max() < 1e-6  # the centre half is flat grey: nothing left to centre
    # A wide photo is not squashed: its view is the centre square, with the border at the
    # top and bottom only (every row is uniform), as the evaluation transform shows it.
    wide = whole[1].view(16, 16, 3)
    assert wide.std(dim=1).max() < 1e-5 and wide[0, 0, 0] < wide[8, 8, 0]


def test_compare_gives_every_feature_set_the_configured_view(folders, backbone, monkeypatch):
    import dinolab.eval.baselines as baselines

    seen = []
    pixels, extract = baselines.raw_pixel_features, baselines.extract_features
    monkeypatch.setattr(baselines, "raw_pixel_features", lambda *a: seen.append(a[2]) or pixels(*a))
    monkeypatch.setattr(
        baselines,
        "extract_features",
        lambda *a, **kw: seen.append(kw["resize_ratio"]) or extract(*a, **kw),
    )
    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = load_config(overrides=[*overrides, "data.global_size=32", "eval.resize_ratio=1.25"])
    compare_with_baselines(cfg, backbone, folders / "train", folders / "val", k=3,
                           progress=False, num_workers=0)  # fmt: skip
    assert seen == [1.25] * 6  # raw pixels, random init and trained: train and val each
