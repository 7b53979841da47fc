from pathlib import Path

from dinolab.demo import DATA, DEMO_BUDGET, demo_args, last_value, run_dir_of


def test_demo_uses_bundled_data_and_user_out_dir_wins():
    assert (DATA / "train").is_dir() and (DATA / "validation").is_dir()
    args = demo_args(["train.epochs=1"])
    assert args[:2] == ["pretrain", str(DATA / "train")] and "train.epochs=1" in args
    assert run_dir_of(args).parent == Path("runs")
    assert run_dir_of(demo_args(["out_dir=elsewhere/x"])) == Path("elsewhere/x")


def test_demo_reports_the_budget_the_run_uses():
    assert last_value(demo_args([]), "train.time_budget") == DEMO_BUDGET
    assert last_value(demo_args(["train.time_budget=30min"]), "train.time_budget") == "30min"


def test_demo_picture_of_a_convolutional_teacher_is_its_pca(tmp_path, monkeypatch):
    import dinolab.demo as demo
    from dinolab.train.pretrain import pretrain

    from .train.conftest import make_images, tiny_config

    for cls in ("a", "b"):
        make_images(tmp_path / "data" / "validation" / cls, n=2, seed=ord(cls))
    run = tmp_path / "run"
    cfg = tiny_config(
        tmp_path / "data" / "validation", run, **{"model.arch": "small_resnet",
        "model.embed_dim": 32, "model.depth": 1, "train.epochs": 1, "train.batch_size": 2,
        "data.global_size": 16, "data.local_size": 8, "eval.every_epochs": 0},
    )  # fmt: skip
    pretrain(cfg)
    monkeypatch.setattr(demo, "DATA", tmp_path / "data")
    picture = demo.teacher_picture(run, n=2)
    assert picture == run / "pca.png" and picture.stat().st_size > 0
