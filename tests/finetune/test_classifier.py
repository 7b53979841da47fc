import pytest
import torch

from dinolab.finetune.classifier import (
    Classifier,
    load_classifier,
    model_config_of_source,
    save_classifier,
    set_drop_path,
    spec_for,
)
from dinolab.models.layers.drop_path import DropPath
from dinolab.models.weights import save_backbone
from tests.finetune.conftest import TINY_VIT, tiny_vit


@pytest.mark.parametrize("pool", ["cls", "cls+mean"])
def test_file_round_trip_gives_the_same_logits_and_classes(tmp_path, pool):
    backbone = tiny_vit()
    model = Classifier(backbone, 3, pool).eval()
    assert model.head.in_features == 16 * (2 if pool == "cls+mean" else 1)
    torch.nn.init.normal_(model.head.weight)
    spec = spec_for(backbone, TINY_VIT, ["a", "b", "c"], pool, 16)
    save_classifier(model, spec, tmp_path / "c.safetensors")
    loaded, spec2 = load_classifier(tmp_path / "c.safetensors")
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(model(x), loaded(x), atol=1e-6)
    assert spec2.classes == ["a", "b", "c"] and spec2.pool == pool
    assert loaded.backbone.preprocessing.mean == (0.5, 0.5, 0.5)


def test_a_backbone_file_is_not_a_classifier(tmp_path):
    save_backbone(tiny_vit(), TINY_VIT, tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match="is not a dinolab classifier"):
        load_classifier(tmp_path / "b.safetensors")
    assert model_config_of_source(tiny_vit(), tmp_path / "b.safetensors").depth == 2


def test_drop_path_ramps_over_the_blocks():
    backbone = tiny_vit()
    set_drop_path(backbone, 0.2)
    assert not isinstance(backbone.blocks[0].drop_path1, DropPath)  # block 0: rate 0
    assert backbone.blocks[1].drop_path2.drop_prob == pytest.approx(0.2)


def test_onnx_export_matches_pytorch_and_names_the_classes(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import json

    import onnx

    from dinolab.finetune.onnx import export_classifier_onnx

    backbone = tiny_vit()
    model = Classifier(backbone, 2).eval()
    spec = spec_for(backbone, TINY_VIT, ["cat", "dog"], "cls", 16)
    path = save_classifier(model, spec, tmp_path / "c.safetensors")
    out = export_classifier_onnx(path, tmp_path / "c.onnx")  # checked against PyTorch inside
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["classes"]) == ["cat", "dog"]
