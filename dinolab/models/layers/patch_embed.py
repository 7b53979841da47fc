"""Image to patch tokens: a strided convolution, one token per non-overlapping patch."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Cut [B, C, H, W] into PxP patches and project each to `embed_dim` -> [B, N, D].

    H and W may differ from the training size (the ViT interpolates its position embedding)
    but must be multiples of the patch size.
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def check_size(self, h: int, w: int) -> None:
        """Raise a readable error for an input the patch grid cannot tile exactly."""
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of the patch size {p}; "
                f"resize or crop the image to a multiple of {p}."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(x.shape[-2], x.shape[-1])
        return self.proj(x).flatten(2).transpose(1, 2)
