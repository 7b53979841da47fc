"""Any torchvision or timm model as a DINO backbone, behind the ViT / ResNet feature dict.

`model.arch=timm:NAME` or `model.arch=torchvision:NAME` builds NAME (random init, no
classifier) and wraps it so the head, the meta-architectures, the evaluations and the export see
what `ResNetBackbone` gives: `forward(x)` -> pooled features [B, embed_dim], and
`forward_features(x)` -> {"x_norm_clstoken", "x_norm_patchtokens", "x_norm_regtokens",
"x_prenorm", "masks"}, where the patch tokens are the last feature map's positions (or a
transformer's non-prefix tokens) and the CLS token is the model's own pooling of them.
timm is imported only when a `timm:` arch is built.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from dinolab.extras import require
from dinolab.models.resnet import cifar_stem_, features_per_group, token_dict

SOURCES = ("timm", "torchvision")
# torchvision classes whose children up to the pooling are the feature trunk, in forward order.
TORCHVISION_TRUNKS = ("ResNet", "RegNet", "VGG", "MobileNetV2", "MobileNetV3", "EfficientNet",
                      "ConvNeXt")  # fmt: skip
POOL_NAMES = ("avgpool", "classifier", "fc")


def is_adapter_arch(arch: str) -> bool:
    """True for `timm:NAME` and `torchvision:NAME`."""
    return arch.split(":", 1)[0] in SOURCES and ":" in arch


def build_adapter(arch: str, cifar_stem: bool = False) -> FeatureAdapter:
    """The adapter for `timm:NAME` or `torchvision:NAME` (random init)."""
    source, _, name = arch.partition(":")
    if source not in SOURCES or not name:
        raise ValueError(f"model.arch {arch!r} is not of the form timm:NAME or torchvision:NAME.")
    if source == "timm":
        return TimmAdapter(name, cifar_stem)
    return TorchvisionAdapter(name, cifar_stem)


class FeatureAdapter(nn.Module):
    """Base: subclasses set `embed_dim`, `patch_size` and define `tokens(x) -> (cls, patch)`."""

    embed_dim: int
    patch_size: int
    num_register_tokens = 0

    @property
    def num_features(self) -> int:
        return self.embed_dim

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled features [B, C], patch tokens [B, N, C])."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict:
        """Named outputs like `VisionTransformer.forward_features` (no registers, no masking)."""
        if masks is not None:
            raise ValueError(
                f"the {self.arch} backbone cannot take patch masks; use a dinolab ViT "
                "(model.arch=vit_*) for masked (iBOT) training."
            )
        cls, patch = self.tokens(x)
        return token_dict(cls, patch)

    def forward_features_list(
        self,
        xs: list[torch.Tensor],
        masks_list: list[torch.Tensor | None] | None = None,
        packed: bool = False,
    ) -> list[dict]:
        """One `forward_features` per resolution group (`packed` is a dinolab-ViT option)."""
        return features_per_group(self, f"the {self.arch}", xs, masks_list, packed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [B, embed_dim]."""
        return self.tokens(x)[0]


class TorchvisionAdapter(FeatureAdapter):
    """A torchvision conv net's trunk (children before its pooling, under torchvision's names,
    so its published weights load minus the classifier); CLS = mean of the last feature map."""

    def __init__(self, name: str, cifar_stem: bool = False) -> None:
        super().__init__()
        self.arch = f"torchvision:{name}"
        try:
            net = torchvision.models.get_model(name, weights=None)
        except ValueError:
            raise ValueError(
                f"model.arch={self.arch} is unknown to torchvision; use a name from "
                "torchvision.models.list_models(), e.g. torchvision:resnet18."
            ) from None
        if type(net).__name__ not in TORCHVISION_TRUNKS:
            raise ValueError(
                f"model.arch={self.arch} is a {type(net).__name__}, whose feature map dinolab "
                f"cannot take apart; use one of {', '.join(TORCHVISION_TRUNKS)} or timm:{name}."
            )
        if cifar_stem:
            cifar_stem_(net, self.arch)
        children = [n for n, _ in net.named_children()]
        end = min(children.index(n) for n in POOL_NAMES if n in children)
        self.stages = children[:end]
        for n in self.stages:
            self.add_module(n, getattr(net, n))
        self.embed_dim, self.patch_size = self._probe()

    @property
    def blocks(self) -> list[nn.Module]:
        """The repeated units (ResNet stages) for activation checkpointing and compile."""
        return [
            getattr(self, n) for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(self, n)
        ]

    @torch.no_grad()
    def _probe(self, size: int = 64) -> tuple[int, int]:
        """(channels, stride) of the trunk, from one eval-mode pass of a zero image."""
        self.eval()
        fmap = self.feature_map(torch.zeros(1, 3, size, size))
        self.train()
        return int(fmap.shape[1]), size // int(fmap.shape[-1])

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for n in self.stages:
            x = getattr(self, n)(x)
        return x

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch = self.feature_map(x).flatten(2).transpose(1, 2)
        return patch.mean(dim=1), patch


class TimmAdapter(FeatureAdapter):
    """A timm model without classifier under `net`; CLS = its own pre-logits pooling (average
    pool for conv nets, the class token or average for transformers)."""

    def __init__(self, name: str, cifar_stem: bool = False) -> None:
        super().__init__()
        self.arch = f"timm:{name}"
        timm = _import_timm(self.arch)
        if not timm.is_model(name):
            raise ValueError(
                f"model.arch={self.arch} is unknown to timm; use a name from timm.list_models(), "
                "e.g. timm:resnet18."
            )
        try:  # transformers that accept it take any crop size (multi-crop); others refuse it
            net = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
        except TypeError as exc:
            if "dynamic_img_size" not in str(exc):
                raise
            net = timm.create_model(name, pretrained=False, num_classes=0)
        if cifar_stem:
            cifar_stem_(net, self.arch)
        self.net = net
        self.embed_dim = int(net.num_features)
        info = getattr(net, "feature_info", None)
        if info:
            stride = int(info[-1]["reduction"])
        else:
            stride = int(getattr(getattr(net, "patch_embed", None), "patch_size", (32,))[0])
        self.patch_size = stride // 4 if cifar_stem else stride
        self.channels_last_out = str(getattr(net, "output_fmt", "NCHW")) == "NHWC"

    @property
    def blocks(self) -> list[nn.Module]:
        """The repeated units (transformer blocks or ResNet stages), for checkpointing/compile."""
        if hasattr(self.net, "blocks"):
            return list(self.net.blocks)
        return [getattr(self.net, n) for n in ("layer1", "layer2", "layer3", "layer4")
                if hasattr(self.net, n)]  # fmt: skip

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.net.forward_features(x)
        cls = self.net.forward_head(feats, pre_logits=True)
        if feats.ndim == 4:
            patch = feats.flatten(1, 2) if self.channels_last_out else feats.flatten(2).mT
        else:
            patch = feats[:, int(getattr(self.net, "num_prefix_tokens", 0)) :]
        return cls, patch


def _import_timm(arch: str):
    return require("timm", "timm", f"model.arch={arch}")
