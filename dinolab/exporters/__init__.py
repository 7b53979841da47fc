"""Write a backbone in other formats: dinolab safetensors, timm, HuggingFace, ONNX.

`export(model, to, out)` dispatches on `to` (one of `FORMATS`); each exporter lives in its own
module (`dinolab.exporters.safetensors`, `.timm`, `.hf`, `.onnx`) and returns the written path.
The exporters import only `.safetensors` (for `model_config_of`), never this dispatcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from dinolab.exporters.hf import export_hf
from dinolab.exporters.onnx import export_onnx
from dinolab.exporters.safetensors import export_safetensors, model_config_of
from dinolab.exporters.timm import export_timm

FORMATS = ("safetensors", "timm", "hf", "onnx")


def export(model: nn.Module, to: str, out: str | Path, **kwargs: Any) -> Path:
    """Export `model` (a backbone) to format `to` at `out`."""
    if to == "safetensors":
        return export_safetensors(model, out)
    if to == "timm":
        return export_timm(model, out)
    if to == "hf":
        return export_hf(model, out)
    if to == "onnx":
        return export_onnx(model, out, **kwargs)
    raise ValueError(f"Unknown export format '{to}': use one of {', '.join(FORMATS)}.")


__all__ = ["FORMATS", "export", "export_safetensors", "model_config_of"]
