"""Backbones (ViT, ResNet) and the DINO head."""

from dinolab.models.build import KNOWN_ARCHS, build_backbone, build_head
from dinolab.models.heads import DINOHead, WeightNormLinear
from dinolab.models.resnet import ResNetBackbone
from dinolab.models.vision_transformer import (
    VisionTransformer,
    vit_base,
    vit_giant2,
    vit_large,
    vit_small,
    vit_tiny,
)

__all__ = [
    "KNOWN_ARCHS",
    "DINOHead",
    "ResNetBackbone",
    "VisionTransformer",
    "WeightNormLinear",
    "build_backbone",
    "build_head",
    "vit_base",
    "vit_giant2",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
