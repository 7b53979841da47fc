"""One pre-norm transformer block: x + attn(norm(x)), then x + ffn(norm(x))."""

from __future__ import annotations

import torch
from torch import nn

from dinolab.models.layers.attention import Attention
from dinolab.models.layers.drop_path import DropPath
from dinolab.models.layers.layer_scale import LayerScale
from dinolab.models.layers.mlp import Mlp, SwiGLUFFN, swiglu_hidden_dim

FFN_LAYERS = ("mlp", "swiglu")


class Block(nn.Module):
    """A ViT block with the DINOv2 key layout (`norm1 attn ls1 norm2 mlp ls2`).

    LayerScale and DropPath become `nn.Identity` when disabled, so they cost nothing in the
    hot path and add no keys to the state dict.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        ffn: str = "mlp",
        layerscale_init: float | None = None,
        drop_path: float = 0.0,
        attn_impl: str = "auto",
    ) -> None:
        super().__init__()
        if ffn not in FFN_LAYERS:
            raise ValueError(f"ffn {ffn!r} is unknown; use one of {FFN_LAYERS}.")
        use_ls = layerscale_init is not None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_impl=attn_impl)
        self.ls1 = LayerScale(dim, layerscale_init) if use_ls else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        if ffn == "swiglu":
            self.mlp = SwiGLUFFN(dim, swiglu_hidden_dim(dim, mlp_ratio))
        else:
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init) if use_ls else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._add(self.drop_path1, x, self.ls1(self.attn(self.norm1(x))))
        x = self._add(self.drop_path2, x, self.ls2(self.mlp(self.norm2(x))))
        return x

    @staticmethod
    def _add(drop: nn.Module, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """x + drop(branch); with DropPath, mask and add are one fused pass."""
        if isinstance(drop, DropPath):
            return drop.add_to(x, branch)
        return x + branch

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax attention weights [B, heads, N, N] this block computes on input x."""
        return self.attn(self.norm1(x), return_attention=True)
