"""Backbone -> a timm state dict: `timm.create_model(name, pretrained=False, **kwargs)` +
`load_state_dict` gives the same network.

The file is safetensors; its metadata `timm_model` / `timm_kwargs` say how to create the
timm model. timm resamples position embeddings with `size=` and antialias, which is the
rule of DINOv2 register models; DINO v1 and DINOv2 without registers use a "+0.1" scale
factor in their original code, so at non-native input sizes their timm outputs differ
slightly (see `dinolab.models.vision_transformer.VisionTransformer`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from dinolab.exporters.safetensors import model_config_of
from dinolab.extras import require
from dinolab.models import convert
from dinolab.models.preprocessing import (
    METADATA_KEY,
    Preprocessing,
    preprocessing_of,
    set_preprocessing,
)
from dinolab.models.resnet import ResNetBackbone
from dinolab.models.vision_transformer import VisionTransformer
from dinolab.models.weights import save_safetensors

_TIMM_SIZE = {"vit_tiny": "tiny", "vit_small": "small", "vit_base": "base", "vit_large": "large"}


def timm_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(timm model name, create_model kwargs) of the timm network equivalent to `model`."""
    model = getattr(model, "backbone", model)
    if isinstance(model, ResNetBackbone):
        return "resnet50", {"num_classes": 0}
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"cannot export a {type(model).__name__} to timm (ViT or ResNet only).")
    cfg = model_config_of(model)
    dim, depth = model.embed_dim, model.n_blocks
    side = math.isqrt(model.pos_embed.shape[1] - 1)
    kwargs: dict[str, Any] = {
        "num_classes": 0,
        "img_size": side * model.patch_size,
        "dynamic_img_size": True,
    }
    regs = model.num_register_tokens
    if cfg.ffn == "swiglu":
        if (dim, depth, model.patch_size) != (1536, 40, 14):
            raise ValueError("timm export of a SwiGLU ViT supports the DINOv2 ViT-g/14 only.")
        return f"vit_giant_patch14{'_reg4' if regs else ''}_dinov2", kwargs
    kwargs.update(
        patch_size=model.patch_size,
        embed_dim=dim,
        depth=depth,
        num_heads=model.num_heads,
        qkv_bias=cfg.qkv_bias,
    )
    if cfg.layerscale_init is not None:
        kwargs["init_values"] = cfg.layerscale_init
    if regs:
        kwargs.update(reg_tokens=regs, no_embed_class=True)
    size = _TIMM_SIZE.get(cfg.arch, "small")
    return f"vit_{size}_patch16_224", kwargs


def export_timm(model: nn.Module, out: str | Path) -> Path:
    """Write the timm state dict of `model` (safetensors, with the create_model call)."""
    backbone = getattr(model, "backbone", model)
    name, kwargs = timm_spec(backbone)
    sd = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
    if isinstance(backbone, VisionTransformer):
        sd = convert.to_timm(sd)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.contiguous() for k, v in sd.items()}
    meta = {
        "format": "timm",
        "timm_model": name,
        "timm_kwargs": json.dumps(kwargs),
        METADATA_KEY: preprocessing_of(backbone).to_json(),
    }
    save_safetensors(sd, out, meta)
    return out


def load_timm(path: str | Path) -> nn.Module:
    """Create the timm model described by an `export_timm` file and load it strictly."""
    timm = require("timm", "timm", "Loading a timm export")
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "timm":
        raise ValueError(f"'{path}' is not a dinolab timm export (no 'timm' format metadata).")
    model = timm.create_model(
        meta["timm_model"], pretrained=False, **json.loads(meta["timm_kwargs"])
    )
    model.load_state_dict(load_file(str(path)), strict=True)
    pre = Preprocessing.from_metadata(meta)
    if pre is not None:  # what timm.data.resolve_data_config(model=model) reads
        model.pretrained_cfg = {
            **getattr(model, "pretrained_cfg", {}),
            "input_size": (3, pre.image_size, pre.image_size),
            "mean": pre.mean,
            "std": pre.std,
            "crop_pct": 1 / pre.resize_ratio,
            "interpolation": "bicubic",
        }
    return set_preprocessing(model.eval(), pre)
