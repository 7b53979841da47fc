from pathlib import Path

from dinolab.demo import DATA, demo_args, run_dir_of


def test_demo_uses_bundled_data_and_user_out_dir_wins():
    assert (DATA / "train").is_dir() and (DATA / "validation").is_dir()
    args = demo_args(["train.epochs=1"])
    assert args[:2] == ["pretrain", str(DATA / "train")] and "train.epochs=1" in args
    assert run_dir_of(args).parent == Path("runs")
    assert run_dir_of(demo_args(["out_dir=elsewhere/x"])) == Path("elsewhere/x")
