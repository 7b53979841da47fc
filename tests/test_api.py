"""The Python API: import dinolab, train -> load -> embed -> evaluate, --version, the examples."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dinolab
from dinolab.config.loader import ConfigError, load_saved_config
from dinolab.models.preprocessing import preprocessing_of
from tests.train.conftest import make_images, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


def _tiny(data, out) -> dict:
    """tiny_overrides as a dict of dotted keys with Python values (what a script passes)."""
    items = dict(s.split("=", 1) for s in tiny_overrides(data, out))
    del items["data.path"], items["out_dir"]
    return {k: json.loads(v) if v[:1].isdigit() or v in ("true", "false") else v
            for k, v in items.items()}  # fmt: skip


def test_import_is_light_and_names_the_version():
    code = "import sys, dinolab; print(dinolab.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [dinolab.__version__, "False"]
    assert {"train", "load", "embed", "evaluate", "__version__"} <= set(dir(dinolab))


def test_version_flag(capsys):
    from dinolab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"dinolab {dinolab.__version__}\n"
    out = subprocess.run([sys.executable, "-m", "dinolab", "--version"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout == f"dinolab {dinolab.__version__}\n"


def test_round_trip_train_load_embed_evaluate(tmp_path):
    images = make_images(tmp_path / "images", n=16)
    for c, name in enumerate("ab"):
        make_images(tmp_path / "labelled" / "train" / name, n=4, seed=c)
        make_images(tmp_path / "labelled" / "val" / name, n=2, seed=10 + c)
    run = tmp_path / "run"
    tiny = _tiny(images, run)
    tiny["train.epochs"] = 1
    # nested, dotted and config= forms together; keyword overrides win over config=
    summary = dinolab.train(images, out=run, config={**tiny, "optim": {"base_lr": 9.0}},
                            optim={"base_lr": 0.003}, **{"data.mean": (0.5, 0.5, 0.5)})  # fmt: skip
    assert summary["steps"] == 2 and Path(summary["teacher_backbone"]).is_file()
    cfg = load_saved_config(run / "config.yaml")
    assert cfg.optim.base_lr == 0.003 and cfg.data.mean == [0.5, 0.5, 0.5]

    model = dinolab.load(run)
    assert preprocessing_of(model).image_size == 32 and preprocessing_of(model).mean[0] == 0.5
    feats = dinolab.embed(model, images, progress=False, out=tmp_path / "feats.pt")
    assert feats["cls"].shape == (16, 32) and len(feats["paths"]) == 16
    assert torch.equal(torch.load(tmp_path / "feats.pt", weights_only=True)["cls"], feats["cls"])
    by_path = dinolab.embed(str(run), sorted(map(str, images.iterdir()))[:2], progress=False)
    assert torch.allclose(by_path["cls"], feats["cls"][:2], atol=1e-6)

    labelled = tmp_path / "labelled"
    knn = dinolab.evaluate(model, labelled / "train", labelled / "val", ks=[3], out=tmp_path / "ev",
                           progress=False)  # fmt: skip
    assert knn["n_val"] == 4 and 0 <= knn["scores"]["3"]["top1"] <= 100
    assert json.loads((tmp_path / "ev" / "knn.json").read_text())["scores"] == knn["scores"]
    linear = dinolab.evaluate(run, labelled / "train", labelled / "val", "linear", mode="fast",
                              epochs=2, progress=False)  # fmt: skip
    assert linear["protocol"] == "linear" and 0 <= linear["best"]["top1"] <= 100

    more = dinolab.train(out=run, resume=True, **{"train.epochs": 2})  # the same run, longer
    assert more["steps"] == 4


def test_train_is_the_function_whatever_was_imported_first():
    code = (
        "import dinolab.train.trainer, dinolab, inspect\n"
        "print(callable(dinolab.train), list(inspect.signature(dinolab.train).parameters)[:3])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True ['data', 'out', 'preset']"


def test_bad_arguments_are_one_sentence_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="optim.base_lrr"):
        dinolab.train(tmp_path, out=tmp_path / "run", optim={"base_lrr": 1e-3})
    with pytest.raises(ValueError, match="resume='yes': use False, True or 'auto'"):
        dinolab.train(tmp_path, out=tmp_path / "run", resume="yes")
    with pytest.raises(ValueError, match="Unknown protocol 'svm': use one of knn, linear"):
        dinolab.evaluate("dino_vits16", tmp_path, tmp_path, "svm")
    assert not (tmp_path / "run").exists()


def test_the_docstring_examples_run(monkeypatch):
    """train -> load -> embed -> evaluate as the docstrings show them, on the bundled photos."""
    from dinolab import api

    monkeypatch.chdir(ROOT)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    shared: dict = {"dinolab": dinolab, "dotted": api.dotted}
    for name in ("train", "load", "embed", "evaluate", "dotted"):
        for test in finder.find(getattr(api, name), name, globs=shared):
            test.globs = shared  # one namespace: later examples use the run of the first
            runner.run(test, clear_globs=False)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted == 14
