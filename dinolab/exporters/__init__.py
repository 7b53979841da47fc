"""Write a backbone in other formats: dinolab safetensors, timm, HuggingFace, ONNX.

`export(model, to, out)` dispatches on `to` (one of `FORMATS`); each exporter also lives in
its own module (`dinolab.exporters.timm`, `.hf`, `.onnx`) and returns the written path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from dinolab.config.schema import ModelConfig
from dinolab.models import convert
from dinolab.models.resnet import ResNetBackbone
from dinolab.models.weights import save_backbone

FORMATS = ("safetensors", "timm", "hf", "onnx")


def model_config_of(model: nn.Module) -> ModelConfig:
    """The ModelConfig that rebuilds `model` (read from its weights and head count)."""
    model = getattr(model, "backbone", model)
    if isinstance(model, ResNetBackbone):
        return ModelConfig(arch="resnet50", patch_size=32, drop_path_rate=0.0)
    return convert.infer_model_config(model.state_dict(), getattr(model, "num_heads", None))


def export_safetensors(model: nn.Module, out: str | Path) -> Path:
    """dinolab's backbone format (`dinolab.models.weights`): tensors, the ModelConfig and the
    position-embedding rule, which `dinolab.hub.load` and `load_backbone` both honour."""
    model = getattr(model, "backbone", model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_backbone(model, model_config_of(model), out)


def export(model: nn.Module, to: str, out: str | Path, **kwargs: Any) -> Path:
    """Export `model` (a backbone) to format `to` at `out`."""
    if to == "safetensors":
        return export_safetensors(model, out)
    if to == "timm":
        from dinolab.exporters.timm import export_timm

        return export_timm(model, out)
    if to == "hf":
        from dinolab.exporters.hf import export_hf

        return export_hf(model, out)
    if to == "onnx":
        from dinolab.exporters.onnx import export_onnx

        return export_onnx(model, out, **kwargs)
    raise ValueError(f"Unknown export format '{to}': use one of {', '.join(FORMATS)}.")


__all__ = ["FORMATS", "export", "export_safetensors", "model_config_of"]
