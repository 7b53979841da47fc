"""`build_meta_arch`: DINO or DINOv2 from the config, above both meta-architectures.

The dispatch lives here so that `meta_arch` (DINO and the shared student/teacher base) and
`meta_arch_dinov2` (which builds on that base) never import each other back.
"""

from __future__ import annotations

from torch import nn

from dinolab.config.schema import Config
from dinolab.train.meta_arch import DINOMetaArch
from dinolab.train.meta_arch_dinov2 import DINOv2MetaArch
from dinolab.train.warm_start import init_backbones


def uses_dinov2(cfg: Config) -> bool:
    """True when the config asks for a DINOv2 part (iBOT, KoLeo, sequence packing) or Gram
    anchoring (DINOv3, built on DINOv2's patch features)."""
    weights = (cfg.ibot.weight, cfg.loss.koleo_weight, cfg.gram.weight)
    return any(w > 0 for w in weights) or cfg.model.pack_sequences


def build_meta_arch(cfg: Config, init_weights: bool = True) -> nn.Module:
    """DINOMetaArch for DINO (unchanged keys), DINOv2MetaArch when a DINOv2 part is on.

    With `init_weights`, both backbones start from `model.init` when it is set (a resumed run
    passes False: its checkpoint holds the weights). With `distill.teacher` set, the
    distillation meta-architecture of `train.distill` (the seam `dinolab distill` uses).
    """
    if cfg.distill.teacher:
        from dinolab.train.distill import build_distill_meta_arch

        return build_distill_meta_arch(cfg, init_weights)
    if uses_dinov2(cfg):
        meta: nn.Module = DINOv2MetaArch(cfg)
    else:
        meta = DINOMetaArch(cfg)
    if init_weights and cfg.model.init:
        init_backbones(meta, cfg.model.init)
    return meta
