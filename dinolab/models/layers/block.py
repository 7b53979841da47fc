"""One pre-norm transformer block: x + attn(norm(x)), then x + ffn(norm(x)).

Besides the plain call, `forward_list` runs several token batches (e.g. global and local crops)
as one packed sequence, and both paths support DINOv2's efficient stochastic depth (the
residual branch computed on the kept samples only, see `DropPath`).
"""

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
        drop_path_impl: str = "mask",
        linear_kernel: str = "auto",
    ) -> None:
        super().__init__()
        if ffn not in FFN_LAYERS:
            raise ValueError(f"ffn {ffn!r} is unknown; use one of {FFN_LAYERS}.")
        use_ls = layerscale_init is not None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_impl, linear_kernel)
        self.ls1 = LayerScale(dim, layerscale_init) if use_ls else nn.Identity()
        self.drop_path1 = DropPath(drop_path, drop_path_impl) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        if ffn == "swiglu":
            self.mlp = SwiGLUFFN(dim, swiglu_hidden_dim(dim, mlp_ratio), kernel=linear_kernel)
        else:
            self.mlp = Mlp(dim, int(dim * mlp_ratio), kernel=linear_kernel)
        self.ls2 = LayerScale(dim, layerscale_init) if use_ls else nn.Identity()
        self.drop_path2 = DropPath(drop_path, drop_path_impl) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """[B, N, D] -> [B, N, D]; a list of token batches runs packed (`forward_list`).

        Taking the list through `__call__` keeps module hooks (FSDP, activation checkpointing,
        compile) working for packed sequences too.
        """
        if isinstance(x, list | tuple):
            return self.forward_list(list(x))
        if _subset(self.drop_path1) or _subset(self.drop_path2):
            return self.forward_list([x])[0]
        x = self._add(self.drop_path1, x, self.ls1(self.attn(self.norm1(x))))
        x = self._add(self.drop_path2, x, self.ls2(self.mlp(self.norm2(x))))
        return x

    @staticmethod
    def _add(drop: nn.Module, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """x + drop(branch); with DropPath, mask and add are one fused pass."""
        if isinstance(drop, DropPath):
            return drop.add_to(x, branch)
        return x + branch

    def forward_list(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Token batches [B_i, N_i, D] -> same shapes, as if each went through `forward`.

        Token-wise layers (norms, projections, FFN) run once over all tokens packed together;
        attention stays within each image (block-diagonal). With stochastic depth in "mask"
        mode the random draws come in a different order than separate calls.
        """
        xs = self._residual(xs, self._attn_branch, self.drop_path1)
        return self._residual(xs, self._ffn_branch, self.drop_path2)

    def _attn_branch(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        flat = _pack(xs)
        out = self.attn.forward_packed(self.norm1(flat), [(x.shape[0], x.shape[1]) for x in xs])
        return _unpack(self.ls1(out), xs)

    def _ffn_branch(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return _unpack(self.ls2(self.mlp(self.norm2(_pack(xs)))), xs)

    def _residual(self, xs: list[torch.Tensor], branch, drop: nn.Module) -> list[torch.Tensor]:
        """x + drop(branch(x)) for every batch; "subset" drop runs the branch on kept rows."""
        if not _subset(drop):
            return [self._add(drop, x, y) for x, y in zip(xs, branch(xs), strict=True)]
        picks = [drop.keep_indices(x) for x in xs]
        outs = branch([x[idx] for x, (idx, _) in zip(xs, picks, strict=True)])
        return [
            torch.index_add(x, 0, idx, y.to(x.dtype), alpha=scale)
            for x, y, (idx, scale) in zip(xs, outs, picks, strict=True)
        ]

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax attention weights [B, heads, N, N] this block computes on input x."""
        return self.attn(self.norm1(x), return_attention=True)


def _subset(drop: nn.Module) -> bool:
    return isinstance(drop, DropPath) and drop.uses_subset()


def _pack(xs: list[torch.Tensor]) -> torch.Tensor:
    """[B_i, N_i, D] batches -> one [sum B_i N_i, D] sequence (a view for a single batch)."""
    if len(xs) == 1:
        return xs[0].reshape(-1, xs[0].shape[-1])
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in xs])


def _unpack(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    sizes = [x.shape[0] * x.shape[1] for x in like]
    parts = flat.split(sizes) if len(like) > 1 else [flat]
    return [p.view(x.shape[0], x.shape[1], -1) for p, x in zip(parts, like, strict=True)]
