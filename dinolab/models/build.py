"""Build the backbone and the head from the typed config."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dinolab.config.schema import HeadConfig, ModelConfig
from dinolab.models.adapters import build_adapter, is_adapter_arch
from dinolab.models.heads import DINOHead
from dinolab.models.resnet import ResNetBackbone
from dinolab.models.small_resnet import SmallResNet
from dinolab.models.vision_transformer import (
    vit_base,
    vit_giant2,
    vit_large,
    vit_small,
    vit_tiny,
)

VIT_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
    "vit_base": vit_base,
    "vit_large": vit_large,
    "vit_giant2": vit_giant2,
}
RESNET_ARCHS = ("resnet50",)
KNOWN_ARCHS = (*VIT_FACTORIES, *RESNET_ARCHS, "small_resnet")


def build_backbone(
    cfg: ModelConfig,
    interpolate_offset: float | None = None,
    interpolate_antialias: bool = False,
    cls_token_std: float = 0.02,
) -> nn.Module:
    """A randomly initialised backbone for `cfg.arch` (ViT fields are ignored for ResNets and
    `timm:NAME` / `torchvision:NAME` models; `cifar_stem` is for ResNets only).

    `interpolate_offset` / `interpolate_antialias`: the ViT's position-embedding rule (see
    `VisionTransformer`); offset None is the config's (`cfg.interpolate_offset`), which training
    and a run's loaders use. `cls_token_std`: the ViT's CLS-token init (DINO 0.02; DINOv2 1e-6).
    """
    if is_adapter_arch(cfg.arch):
        return build_adapter(cfg.arch, cifar_stem=cfg.cifar_stem)
    if cfg.arch in RESNET_ARCHS:
        return ResNetBackbone(cfg.arch, cifar_stem=cfg.cifar_stem)
    if cfg.arch == "small_resnet":
        return SmallResNet(embed_dim=cfg.embed_dim or 256, depth=cfg.depth or 1)
    if cfg.arch not in VIT_FACTORIES:
        raise ValueError(
            f"model.arch {cfg.arch!r} is unknown; use one of {', '.join(KNOWN_ARCHS)}, "
            "timm:NAME or torchvision:NAME."
        )
    if cfg.cifar_stem:
        raise ValueError(
            f"model.cifar_stem is for ResNets, not {cfg.arch}; set model.cifar_stem=false."
        )
    sizes = {
        k: v
        for k, v in (
            ("embed_dim", cfg.embed_dim),
            ("depth", cfg.depth),
            ("num_heads", cfg.num_heads),
        )
        if v > 0
    }
    offset = cfg.interpolate_offset if interpolate_offset is None else interpolate_offset
    return VIT_FACTORIES[cfg.arch](
        **sizes,
        patch_size=cfg.patch_size,
        img_size=cfg.img_size,
        drop_path_rate=cfg.drop_path_rate,
        num_register_tokens=cfg.num_register_tokens,
        layerscale_init=cfg.layerscale_init,
        ffn=cfg.ffn,
        qkv_bias=cfg.qkv_bias,
        attn_impl=cfg.attn_impl,
        drop_path_uniform=cfg.drop_path_uniform,
        drop_path_impl=cfg.drop_path_impl,
        linear_kernel=cfg.linear_kernel,
        interpolate_offset=offset,
        interpolate_antialias=interpolate_antialias,
        cls_token_std=cls_token_std,
    )


def build_head(cfg: HeadConfig, in_dim: int) -> DINOHead:
    """The DINO head on top of a backbone with `in_dim` features."""
    return DINOHead(
        in_dim,
        cfg.out_dim,
        hidden_dim=cfg.hidden_dim,
        bottleneck_dim=cfg.bottleneck_dim,
        nlayers=cfg.nlayers,
        norm_last_layer=cfg.norm_last_layer,
        use_bn=cfg.use_bn,
        last_layer_fp32=cfg.last_layer_fp32,
    )
