"""Backbone -> a HuggingFace transformers model directory (config.json + model.safetensors).

ViTs without registers become `Dinov2Model`, with registers `Dinov2WithRegistersModel`;
`from_pretrained(dir)` loads them. HF blocks always have LayerScale, so DINO v1 models get
gammas of 1. Position embeddings at non-native sizes: HF's `Dinov2WithRegistersModel`
resamples like the original register models; `Dinov2Model` (transformers >= 4.47) uses
`size=` without the original "+0.1" scale factor, so at non-native sizes it differs
slightly from the original DINO / DINOv2 code that dinolab reproduces.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from torch import nn

from dinolab.exporters.safetensors import model_config_of
from dinolab.extras import require
from dinolab.models import convert
from dinolab.models.preprocessing import preprocessing_of
from dinolab.models.vision_transformer import VisionTransformer
from dinolab.models.weights import save_safetensors


def hf_config(model: VisionTransformer):
    """The transformers config (Dinov2Config / Dinov2WithRegistersConfig) of a dinolab ViT."""
    transformers = require("transformers", "hf", "HF export")
    cfg = model_config_of(model)
    side = math.isqrt(model.pos_embed.shape[1] - 1)
    kwargs = dict(
        hidden_size=model.embed_dim,
        num_hidden_layers=model.n_blocks,
        num_attention_heads=model.num_heads,
        mlp_ratio=4,
        patch_size=model.patch_size,
        image_size=side * model.patch_size,
        layerscale_value=cfg.layerscale_init or 1.0,
        use_swiglu_ffn=cfg.ffn == "swiglu",
        qkv_bias=cfg.qkv_bias,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
    )
    if model.num_register_tokens:
        return transformers.Dinov2WithRegistersConfig(
            num_register_tokens=model.num_register_tokens, **kwargs
        )
    return transformers.Dinov2Config(**kwargs)


def export_hf(model: nn.Module, out: str | Path, check: bool = True) -> Path:
    """Write `out/` with config.json and model.safetensors (the Hub key names).

    With `check`, the directory is loaded back with `from_pretrained` and any missing or
    unexpected key is an error.
    """
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, VisionTransformer):
        raise ValueError(
            f"HuggingFace export supports ViT backbones only, not {type(backbone).__name__}."
        )
    config = hf_config(backbone)
    sd = convert.to_hf({k: v.detach().cpu() for k, v in backbone.state_dict().items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    processor = preprocessing_of(backbone).hf_processor_config()  # AutoImageProcessor reads it
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    weights = {k: v.contiguous() for k, v in sd.items()}
    save_safetensors(weights, out / "model.safetensors", {"format": "pt"})
    if check:
        from transformers import Dinov2Model, Dinov2WithRegistersModel

        cls = Dinov2WithRegistersModel if backbone.num_register_tokens else Dinov2Model
        _, info = cls.from_pretrained(str(out), output_loading_info=True)
        bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys") and v}
        if bad:
            raise ValueError(f"the HF export at '{out}' does not load cleanly: {bad}.")
    return out
