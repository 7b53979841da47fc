"""Exporters: dinolab safetensors, timm, HuggingFace, ONNX — each loaded back by its reader."""

import numpy as np
import pytest
import timm
import torch

from dinolab.config.schema import ModelConfig
from dinolab.exporters import export
from dinolab.hub import load
from dinolab.models import hub
from dinolab.models.vision_transformer import VisionTransformer
from dinolab.models.weights import load_backbone

CFG = ModelConfig(arch="vit_small", patch_size=14, img_size=56, embed_dim=64, depth=2,
                  num_heads=2, drop_path_rate=0.0, layerscale_init=1e-5)  # fmt: skip


def model(offset=0.1, antialias=False, **kw):
    m = hub.build_model(ModelConfig(**{**CFG.__dict__, **kw}), offset, antialias).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m


def feats(m, x):
    with torch.no_grad():
        out = m.forward_features(x)
    return out["x_norm_clstoken"], out["x_norm_patchtokens"]


def test_safetensors_keeps_weights_config_and_rule(tmp_path):
    m = model(0.1)
    path = export(m, "safetensors", tmp_path / "b.safetensors")
    assert torch.equal(load_backbone(path).pos_embed, m.pos_embed)  # the trainer's reader
    back = load(path)
    assert isinstance(back, VisionTransformer) and back.interpolate_offset == 0.1
    x = torch.randn(1, 3, 56, 42)
    assert torch.equal(feats(back, x)[1], feats(m, x)[1])


def test_timm_export_loads_in_timm(tmp_path):
    from dinolab.exporters.timm import load_timm

    m = model(0.0, True, num_register_tokens=4)  # timm's rule is the register models' rule
    t = load_timm(export(m, "timm", tmp_path / "t.safetensors"))
    for size in ((56, 56), (56, 42)):
        x = torch.randn(1, 3, *size)
        ref = t.forward_features(x).detach()
        cls, patch = feats(m, x)
        assert (ref[:, 0] - cls).abs().max() < 1e-4
        assert (ref[:, 5:] - patch).abs().max() < 1e-4
    r = hub.build_model(ModelConfig(arch="resnet50"))
    tr = timm.create_model("resnet50", pretrained=False, num_classes=0)
    from safetensors.torch import load_file

    tr.load_state_dict(load_file(export(r, "timm", tmp_path / "r.safetensors")), strict=True)


def test_hf_export_loads_with_from_pretrained(tmp_path):
    from transformers import Dinov2Model

    m = model(0.1)
    out = export(m, "hf", tmp_path / "hf")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    h = Dinov2Model.from_pretrained(out).eval()
    x = torch.randn(1, 3, 56, 56)
    ref = h(pixel_values=x).last_hidden_state.detach()
    cls, patch = feats(m, x)
    assert (ref[:, 0] - cls).abs().max() < 1e-4 and (ref[:, 1:] - patch).abs().max() < 1e-4
    assert torch.equal(load(out).pos_embed, m.pos_embed)  # and back into dinolab
    with pytest.raises(ValueError, match="ViT backbones only"):
        export(hub.build_model(ModelConfig(arch="resnet50")), "hf", tmp_path / "r")
    with pytest.raises(ValueError, match="Unknown export format"):
        export(m, "tflite", tmp_path / "x")


def test_onnx_dynamic_hw_for_register_models(tmp_path):
    import onnxruntime as ort

    m = model(0.0, True, num_register_tokens=4, depth=1)
    path = export(m, "onnx", tmp_path / "m.onnx", image_size=(56, 42))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in ((56, 42), (70, 98)):  # the second size was never traced
        x = torch.randn(2, 3, *size)
        cls, patch = session.run(None, {"pixel_values": x.numpy()})
        ref_cls, ref_patch = feats(m, x)
        assert np.abs(cls - ref_cls.numpy()).max() < 1e-4
        assert np.abs(patch - ref_patch.numpy()).max() < 1e-4
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        export(m, "onnx", tmp_path / "bad.onnx", image_size=50)
