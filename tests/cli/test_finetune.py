"""`dinolab finetune MODEL ... key=value` and `dinolab predict RUN IMAGES --out CSV`."""

import csv

from dinolab.cli import main
from dinolab.models.weights import save_backbone
from tests.finetune.conftest import TINY_VIT, make_folders, tiny_vit

FAST = ["epochs=1", "batch_size=4", "progress=false", "tensorboard=false", "randaug_ops=0"]


def test_finetune_then_predict(tmp_path, capsys):
    train, val = make_folders(tmp_path / "data")
    weights = save_backbone(tiny_vit(), TINY_VIT, tmp_path / "teacher.safetensors")
    out = tmp_path / "ft"
    args = ["finetune", str(weights), "--train", str(train), "--val", str(val), "--device", "cpu"]
    assert main([*args, f"out_dir={out}", *FAST, "--precision", "fp32"]) == 0
    assert "val top-1" in capsys.readouterr().out
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(out), str(val), "--out", str(preds), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "8 images classified" in printed and "top-1" in printed
    with open(preds) as f:
        assert len(list(csv.DictReader(f))) == 8
    # resume a finished run with more epochs: it continues from epoch 1
    assert main(["finetune", "--resume", str(out), "epochs=2", "--quiet"]) == 0
    assert "after epoch 2" in capsys.readouterr().out


def test_bad_input_is_one_line(tmp_path, capsys):
    train, val = make_folders(tmp_path / "data", classes=("red",))
    weights = save_backbone(tiny_vit(), TINY_VIT, tmp_path / "teacher.safetensors")
    args = ["finetune", str(weights), "--train", str(train), "--val", str(val), "--quiet"]
    assert main([*args, f"out_dir={tmp_path / 'ft'}", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dinolab: error:") and "single class" in err and "\n" not in err
    assert main(["finetune", str(weights), "--train", str(train), "epochz=3"]) == 2
    assert "Did you mean 'epochs'?" in capsys.readouterr().err
