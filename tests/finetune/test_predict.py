import csv

import pytest
import torch

from dinolab.finetune.loop import run_finetune
from dinolab.finetune.predict import (
    accuracy_from_folders,
    image_paths,
    load_for_predict,
    predict,
    write_csv,
)
from tests.finetune.conftest import TINY_VIT, tiny_config, tiny_vit


def test_predict_matches_the_evaluation_accuracy(folders, tmp_path):
    train, val = folders
    cfg = tiny_config(train, val, tmp_path / "run", "epochs=3", "lr=0.5")
    summary = run_finetune(cfg, tiny_vit(), TINY_VIT)
    model, spec = load_for_predict(tmp_path / "run")
    rows = predict(model, spec, image_paths([val]), torch.device("cpu"), "fp32", top_k=2)
    assert len(rows) == 8 and {r["class"] for r in rows} <= set(spec.classes)
    assert all(r["probability"] >= r["probability_2"] for r in rows)
    accuracy = accuracy_from_folders(rows, spec.classes)
    assert accuracy == pytest.approx(summary["best"]["top1"])  # the exported = the best epoch
    out = write_csv(rows, tmp_path / "preds.csv")
    with open(out) as f:
        read = list(csv.DictReader(f))
    assert read[0].keys() >= {"path", "class", "probability"} and len(read) == 8


def test_unreadable_images_get_a_row_with_the_error(folders, tmp_path):
    from dinolab.finetune.classifier import Classifier, spec_for

    bad = tmp_path / "x" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    backbone = tiny_vit()
    spec = spec_for(backbone, TINY_VIT, ["green", "red"], "cls", 16)
    paths = image_paths([bad, folders[1] / "red"])
    rows = predict(Classifier(backbone, 2), spec, paths, torch.device("cpu"), "fp32")
    assert "error" in rows[0] and rows[0]["path"] == str(bad) and len(rows) == 5
    assert accuracy_from_folders(rows, spec.classes) is not None  # x/ is skipped: no class
    with pytest.raises(FileNotFoundError, match="No image or folder"):
        image_paths([tmp_path / "missing"])
