"""torchvision ResNet as a DINO backbone, with the same named outputs as the ViT."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def cifar_stem_(net: nn.Module, what: str) -> None:
    """Swap a ResNet's 7x7/2 conv + max-pool stem for a 3x3/1 conv (CIFAR ResNets), in place.

    For 32-64 px images: the feature stride drops from 32 to 8, so a 32 px crop still leaves
    a 4x4 map. `net` must have a single `conv1` Conv2d and a `maxpool` (torchvision and timm
    ResNets, ResNeXts and Wide ResNets).
    """
    conv = getattr(net, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not hasattr(net, "maxpool"):
        raise ValueError(
            f"model.cifar_stem needs a ResNet with a plain conv1 + maxpool stem, which {what} "
            "does not have; set model.cifar_stem=false."
        )
    net.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()


def token_dict(cls: torch.Tensor, patch: torch.Tensor) -> dict:
    """The ViT feature dict for a network without CLS or registers: `cls` [B, C] (pooled),
    `patch` [B, N, C] (feature-map cells); the prenorm tokens are the same values."""
    return {
        "x_norm_clstoken": cls,
        "x_norm_regtokens": patch.new_zeros(patch.shape[0], 0, patch.shape[2]),
        "x_norm_patchtokens": patch,
        "x_prenorm": torch.cat((cls.unsqueeze(1), patch), dim=1),
        "masks": None,
    }


def features_per_group(
    backbone: nn.Module,
    what: str,
    xs: list[torch.Tensor],
    masks_list: list[torch.Tensor | None] | None,
    packed: bool,
) -> list[dict]:
    """`forward_features_list` of a network that cannot pack sequences: one call per group."""
    if packed:
        raise ValueError(f"{what} backbone cannot pack sequences; set model.pack_sequences=false.")
    masks_list = masks_list if masks_list is not None else [None] * len(xs)
    return [backbone.forward_features(x, m) for x, m in zip(xs, masks_list, strict=True)]


class FeatureMapBackbone(nn.Module):
    """The ViT's feature dict for a network with a `feature_map(x) -> [B, C, h, w]`: the map's
    cells are the patch tokens, their average the CLS token (no registers, no masking)."""

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict:
        """Named outputs like `VisionTransformer.forward_features` (no registers, no masking)."""
        if masks is not None:
            raise ValueError(
                "a ResNet backbone cannot take patch masks; use a ViT for masked (iBOT) training."
            )
        fmap = self.feature_map(x)
        patch = fmap.flatten(2).transpose(1, 2)  # [B, HW, C]
        cls = patch.mean(dim=1)
        return token_dict(cls, patch)

    def forward_features_list(
        self,
        xs: list[torch.Tensor],
        masks_list: list[torch.Tensor | None] | None = None,
        packed: bool = False,
    ) -> list[dict]:
        """One `forward_features` per resolution group (`packed` is a ViT-only option)."""
        return features_per_group(self, "a ResNet", xs, masks_list, packed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features [B, C]."""
        return self.feature_map(x).mean(dim=(2, 3))


class ResNetBackbone(FeatureMapBackbone):
    """A torchvision ResNet (random init) without its classifier.

    The stages are registered under torchvision's own names (`conv1`, `bn1`, `layer1`..),
    so the published DINO ResNet-50 weights load as they are. The last feature map plays
    the role of the patch tokens (one per 32x32 pixels, 8x8 with `cifar_stem`), its average
    the CLS token.
    """

    def __init__(self, name: str = "resnet50", cifar_stem: bool = False) -> None:
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"ResNet {name!r} is unknown; use one of {RESNETS}.")
        net = getattr(torchvision.models, name)(weights=None)
        self.embed_dim = self.num_features = net.fc.in_features
        self.patch_size = 32
        self.num_register_tokens = 0
        if cifar_stem:
            cifar_stem_(net, name)
            self.patch_size = 8
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """What runs before the first stage (conv, BN, ReLU, max-pool)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output [B, C, H/32, W/32]."""
        x = self.stem(x)
        for stage in self.blocks:
            x = stage(x)
        return x

    @property
    def blocks(self) -> list[nn.Module]:
        """The four stages: the units activation checkpointing, compile and FSDP work on."""
        return [self.layer1, self.layer2, self.layer3, self.layer4]
