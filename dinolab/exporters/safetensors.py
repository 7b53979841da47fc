"""Backbone -> dinolab's own safetensors file, and the ModelConfig every exporter starts from."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dinolab.config.schema import ModelConfig
from dinolab.models import convert
from dinolab.models.resnet import ResNetBackbone
from dinolab.models.weights import pos_interpolation, save_backbone


def model_config_of(model: nn.Module) -> ModelConfig:
    """The ModelConfig that rebuilds `model` (read from its weights, head count and rule)."""
    model = getattr(model, "backbone", model)
    if isinstance(model, ResNetBackbone):
        return ModelConfig(arch="resnet50", patch_size=32, drop_path_rate=0.0)
    cfg = convert.infer_model_config(model.state_dict(), getattr(model, "num_heads", None))
    cfg.interpolate_offset = pos_interpolation(model)["offset"]
    return cfg


def export_safetensors(model: nn.Module, out: str | Path) -> Path:
    """dinolab's backbone format (`dinolab.models.weights`): tensors, the ModelConfig and the
    position-embedding rule, which `dinolab.hub.load` and `load_backbone` both honour."""
    model = getattr(model, "backbone", model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_backbone(model, model_config_of(model), out)
