"""The core install works without any optional package; each extra's absence is one sentence.

Absence is simulated with an import hook (nothing is uninstalled): `without_extras` hides every
optional package from `import` for the duration of a test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from dinolab.extras import EXTRA_OF, MissingExtraError, available, require
from tests.eval.conftest import TINY_MODEL, backbone, run_dir  # noqa: F401 - fixtures
from tests.train.conftest import make_images, tiny_config

OPTIONAL = sorted({name.split(".")[0] for name in EXTRA_OF} - {"torch"})
HIDDEN = (*OPTIONAL, "torch.utils.tensorboard")


class _Blocker:
    """A meta-path finder that makes the optional packages look uninstalled."""

    def find_spec(self, name, path=None, target=None):
        if name in HIDDEN or name.startswith(tuple(f"{h}." for h in HIDDEN)):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None


@pytest.fixture
def without_extras(monkeypatch):
    for name in list(sys.modules):
        if name in HIDDEN or name.startswith(tuple(f"{h}." for h in HIDDEN)):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Blocker(), *sys.meta_path])


def test_importing_dinolab_loads_no_optional_package():
    code = (
        "import sys, dinolab, dinolab.cli, dinolab.train.pretrain, dinolab.eval.knn, "
        "dinolab.exporters, dinolab.viz.video, dinolab.extract, dinolab.hub, dinolab.demo\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HIDDEN!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.usefixtures("without_extras")
def test_tiny_training_and_knn_run_without_the_extras(tmp_path):
    images = make_images(tmp_path / "images", n=16)
    for c, name in enumerate("ab"):
        make_images(tmp_path / "train" / name, n=4, seed=c)
        make_images(tmp_path / "val" / name, n=2, seed=10 + c)
    assert not available("tensorboard") and not available("wandb")
    from dinolab.train.pretrain import pretrain

    cfg = tiny_config(
        images,
        tmp_path / "run",
        **{
            "train.epochs": 1,
            "train.tensorboard": True,  # the default logger: skipped when absent, not an error
            "eval.train": tmp_path / "train",
            "eval.val": tmp_path / "val",
            "eval.k": "[3]",
        },
    )
    summary = pretrain(cfg)
    assert summary["steps"] == 2
    assert 0.0 <= summary["knn"]["scores"]["3"]["top1"] <= 100.0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2
    assert not (tmp_path / "run" / "tensorboard").exists()


@pytest.mark.parametrize(
    ("module", "extra"),
    [(m, e) for m, e in EXTRA_OF.items() if m != "torch.utils.tensorboard"],
)
@pytest.mark.usefixtures("without_extras")
def test_a_missing_package_names_its_extra(module, extra):
    with pytest.raises(MissingExtraError) as err:
        require(module)
    message = str(err.value)
    assert message.endswith(f"pip install 'dinolab[{extra}]'.")
    assert "\n" not in message
    assert isinstance(err.value, ImportError) and isinstance(err.value, ValueError)


@pytest.mark.usefixtures("without_extras")
def test_features_that_need_an_extra_say_which(tmp_path):
    from dinolab.config.schema import ModelConfig
    from dinolab.exporters import export
    from dinolab.models import build_backbone
    from dinolab.viz.video import _write

    vit = build_backbone(ModelConfig(**TINY_MODEL))
    cases = {
        "hf": lambda: export(vit, "hf", tmp_path / "hf"),
        "onnx": lambda: export(vit, "onnx", tmp_path / "m.onnx", image_size=32),
        "timm": lambda: build_backbone(ModelConfig(arch="timm:resnet18")),
        "viz-video": lambda: _write(
            [torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()] * 2, tmp_path / "v.mp4", 2.0
        ),  # fmt: skip
    }
    for extra, call in cases.items():
        with pytest.raises(MissingExtraError, match=rf"pip install 'dinolab\[{extra}\]'\.$"):
            call()
    assert not (tmp_path / "hf").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.usefixtures("without_extras")
def test_the_cli_prints_the_extra_in_one_line(run_dir, tmp_path, capsys):  # noqa: F811
    from dinolab.cli import main

    assert main(["export", str(run_dir), "--to", "hf", "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'dinolab[hf]'" in err
