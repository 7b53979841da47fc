"""Every export records the model's preprocessing where its own ecosystem looks for it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.exporters import export
from dinolab.hub import load
from dinolab.models.preprocessing import Preprocessing, preprocessing_of, set_preprocessing
from tests.exporters.test_exporters import model

PRE = Preprocessing((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), 56)


def _model(**kw):
    return set_preprocessing(model(0.0, True, **kw), PRE)


def test_hf_export_writes_a_preprocessor_config_that_transformers_reads(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoImageProcessor

    out = export(_model(), "hf", tmp_path / "hf")
    config = json.loads((out / "preprocessor_config.json").read_text())
    assert config["crop_size"] == {"height": 56, "width": 56} and config["image_mean"] == [
        0.5,
        0.4,
        0.3,
    ]
    processor = AutoImageProcessor.from_pretrained(out)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    theirs = processor(images=photo, return_tensors="pt")["pixel_values"][0]
    from dinolab.extract import image_transform

    ours = image_transform(56, mean=PRE.mean, std=PRE.std)(photo)
    assert theirs.shape == ours.shape == (3, 56, 56)
    # same resize + crop + normalisation; PIL's and torchvision's bicubic differ by a few levels
    assert (theirs - ours).abs().mean() < 0.05
    assert preprocessing_of(load(out)) == PRE  # and back into dinolab


def test_timm_export_sets_timms_data_config(tmp_path):
    timm = pytest.importorskip("timm")
    from dinolab.exporters.timm import load_timm

    t = load_timm(export(_model(num_register_tokens=4), "timm", tmp_path / "t.safetensors"))
    data = timm.data.resolve_data_config({}, model=t)
    assert data["input_size"] == (3, 56, 56) and data["mean"] == PRE.mean and data["std"] == PRE.std
    assert data["crop_pct"] == pytest.approx(224 / 256) and preprocessing_of(t) == PRE


def test_onnx_export_records_it_in_the_model_metadata(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    fixed_size = set_preprocessing(model(0.1, False, depth=1), PRE)  # v1 rule: one input size
    path = export(fixed_size, "onnx", tmp_path / "m.onnx", check=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert Preprocessing.from_metadata(meta) == PRE
    x = torch.randn(1, 3, 56, 56)  # traced at the model's own size (56), not at 224
    assert session.run(None, {"pixel_values": x.numpy()})[0].shape == (1, 64)
