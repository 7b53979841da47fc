"""A narrow ResNet for small images on CPUs: the backbone of the CPU recipes.

torchvision's ResNet-18 with a CIFAR stem costs ~0.56 GFLOP per 32 px image (12 GFLOP per
DINO step and image with 2 global + 4 local crops): on 2 CPU cores that is ~45 images/s, too
slow to learn anything in minutes. Halving every width divides that by four; one block per
stage halves it again. Convolutions and BatchNorm also bring the locality prior a ViT must learn,
which is what a run of a few epochs cannot afford. The last feature map plays the role of the
patch tokens (one per 8x8 pixels), its average the CLS token, like `ResNetBackbone`.
"""

from __future__ import annotations

import torch
from torch import nn

from dinolab.models.resnet import FeatureMapBackbone


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(FeatureMapBackbone):
    """Stem 3x3/1, then four stages of `depth` BasicBlocks with widths E/8, E/4, E/2, E and
    strides 1, 2, 2, 2 (`embed_dim` = E, the feature size). E = 512, depth 2 is the CIFAR
    ResNet-18; the CPU recipe uses E = 256, depth 1 (~0.13 GFLOP per 32 px image)."""

    def __init__(self, embed_dim: int = 256, depth: int = 1) -> None:
        super().__init__()
        if embed_dim % 8 or embed_dim < 8 or depth < 1:
            raise ValueError(
                f"small_resnet needs model.embed_dim a multiple of 8 and model.depth >= 1, "
                f"got {embed_dim} and {depth}."
            )
        widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = 8
        self.num_register_tokens = 0
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks = [
                BasicBlock(cin if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1)
                for j in range(depth)
            ]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output [B, E, H/8, W/8]."""
        return self.stages(self.stem(x))

    @property
    def blocks(self) -> list[nn.Module]:
        """The stages: the units activation checkpointing, compile and FSDP work on."""
        return list(self.stages)
