"""Transformer building blocks, one per module (DINOv2 layout and key names)."""

from dinolab.models.layers.attention import Attention
from dinolab.models.layers.block import Block
from dinolab.models.layers.drop_path import DropPath, drop_path, drop_path_mask
from dinolab.models.layers.layer_scale import LayerScale
from dinolab.models.layers.mlp import Mlp, SwiGLUFFN, swiglu_hidden_dim
from dinolab.models.layers.patch_embed import PatchEmbed

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "SwiGLUFFN",
    "drop_path",
    "drop_path_mask",
    "swiglu_hidden_dim",
]
