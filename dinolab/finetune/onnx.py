"""A fine-tuned classifier -> ONNX, with the exporter's own quiet logs, metadata and check.

Input `pixel_values` [B, 3, S, S] (normalised as the metadata's `preprocessing` says, S its
image size; the batch is dynamic), outputs `logits` and `probabilities` [B, classes]; the
class names (JSON, label order) are in the metadata under `classes`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from dinolab.exporters.onnx import write_onnx
from dinolab.extras import require
from dinolab.finetune.classifier import load_classifier
from dinolab.models.preprocessing import METADATA_KEY


class _OnnxClassifier(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(pixel_values)
        return logits, logits.softmax(dim=-1)


def export_classifier_onnx(classifier_file: str | Path, out: str | Path) -> Path:
    """Write `out` from a classifier file and check it against PyTorch with onnxruntime."""
    for module in ("onnx", "onnxscript"):
        require(module, "onnx", "onnx=true")
    model, spec = load_classifier(classifier_file)
    size = spec.input_preprocessing().image_size
    batch = torch.export.Dim("batch", min=1, max=4096)
    metadata = {METADATA_KEY: json.dumps(spec.preprocessing), "classes": json.dumps(spec.classes)}
    x = torch.randn(2, 3, size, size)
    return write_onnx(
        _OnnxClassifier(model).eval(), x, out, ["logits", "probabilities"], {0: batch}, metadata
    )
