"""One configurable Vision Transformer (DINOv2 layout) and its size factories.

Parameter names follow facebookresearch/dinov2 (`patch_embed.proj`, `cls_token`, `pos_embed`,
`register_tokens`, `mask_token`, `blocks.{i}...`, `norm`) so published DINO / DINOv2 weights
load without renaming.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dinolab.models.layers import Block, PatchEmbed


class VisionTransformer(nn.Module):
    """ViT backbone returning named outputs; any input size that the patch size divides.

    The position embedding is resampled bicubically at other sizes, by the rule of
    `interpolate_offset` and `interpolate_antialias` (as in facebookresearch/dinov2):
    - offset 0 (older dinolab runs; DINOv2 with registers, with antialias): `size=(gh, gw)`;
    - offset 0.1 (both official trainers, DINO v1 and DINOv2 without registers; dinolab's
      `model.interpolate_offset` default): `scale_factor=(g + 0.1) / M`, facebookresearch/dino #8.
    The scale factor, not only the output size, enters the bicubic kernel's coordinates, so
    the rules give different embeddings at every non-native size.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        ffn: str = "mlp",
        layerscale_init: float | None = None,
        drop_path_rate: float = 0.0,
        drop_path_uniform: bool = False,
        num_register_tokens: int = 0,
        attn_impl: str = "auto",
        drop_path_impl: str = "mask",
        linear_kernel: str = "auto",
        interpolate_offset: float = 0.0,
        interpolate_antialias: bool = False,
        cls_token_std: float = 0.02,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(
                f"img_size {img_size} is not a multiple of the patch size {patch_size}; "
                f"set model.img_size to a multiple of {patch_size}."
            )
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_register_tokens = num_register_tokens
        self.n_blocks = depth
        self.interpolate_offset = float(interpolate_offset)
        self.interpolate_antialias = bool(interpolate_antialias)
        self.cls_token_std = cls_token_std
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        if num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        else:
            self.register_tokens = None
        # DINO v1 ramps stochastic depth linearly over depth; DINOv2 uses one rate everywhere.
        if drop_path_uniform:
            rates = [drop_path_rate] * depth
        else:
            rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                ffn,
                layerscale_init,
                r,
                attn_impl,
                drop_path_impl,
                linear_kernel,
            )
            for r in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.init_weights()

    def init_weights(self) -> None:
        """DINO / DINOv2 init: truncated normal (std .02) for linears and embeddings; the CLS
        token's std is `cls_token_std` (DINO 0.02, DINOv2 1e-6; the +-2 truncation is far out
        at both, so either is a plain normal)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=self.cls_token_std)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        nn.init.zeros_(self.mask_token)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Position embedding [1, 1 + (h/P)(w/P), D] for an h x w (pixels) input image.

        The stored grid is resized bicubically by this model's rule (see the class); at the
        native size it is returned as is. `x` (the tokens) is unused: DINOv2's signature.
        """
        pos = self.pos_embed
        gh, gw = h // self.patch_size, w // self.patch_size
        side = math.isqrt(pos.shape[1] - 1)
        published = bool(self.interpolate_offset or self.interpolate_antialias)
        # The published rules, like dinov2's code, also resample a native grid of a non-square
        # image (h != w in pixels, e.g. a remainder the patch embedding drops).
        if gh == side and gw == side and (h == w or not published):
            return pos
        dim = pos.shape[-1]
        grid = pos[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            off = self.interpolate_offset
            kw: dict[str, Any] = {"scale_factor": ((gh + off) / side, (gw + off) / side)}
        else:
            kw = {"size": (gh, gw)}
        grid = F.interpolate(
            grid, mode="bicubic", align_corners=False, antialias=self.interpolate_antialias, **kw
        )
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim).to(pos.dtype)
        return torch.cat((pos[:, :1], grid), dim=1)

    def prepare_tokens_with_masks(
        self, x: torch.Tensor, masks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Image [B, C, H, W] -> tokens [B, 1 + R + N, D]: CLS, registers, patches.

        Masked patches (bool [B, N], True = masked) become `mask_token` before the position
        embedding is added, as in DINOv2's iBOT branch.
        """
        B, _, H, W = x.shape
        tokens = self.patch_embed(x)
        if masks is not None:
            if masks.shape != tokens.shape[:2]:
                raise ValueError(
                    f"masks of shape {tuple(masks.shape)} do not match the patch grid "
                    f"{tuple(tokens.shape[:2])}; pass a bool mask [batch, num_patches]."
                )
            mask_token = self.mask_token.to(tokens.dtype).unsqueeze(0)
            tokens = torch.where(masks.bool().unsqueeze(-1), mask_token, tokens)
        pos = self.interpolate_pos_encoding(tokens, H, W)
        # The token stream keeps the patch embedding's dtype (bf16 under autocast): adding the
        # float32 embeddings as they are would promote every block's residual stream to
        # float32 and cost a cast before and after each linear layer.
        dtype = tokens.dtype
        parts = [(self.cls_token + pos[:, :1]).to(dtype).expand(B, -1, -1)]
        if self.register_tokens is not None:
            parts.append(self.register_tokens.to(dtype).expand(B, -1, -1))
        parts.append(tokens + pos[:, 1:].to(dtype))
        return torch.cat(parts, dim=1)

    def _named_outputs(self, x: torch.Tensor, masks: torch.Tensor | None) -> dict[str, Any]:
        x_norm = self.norm(x)
        r = 1 + self.num_register_tokens
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1:r],
            "x_norm_patchtokens": x_norm[:, r:],
            "x_prenorm": x,
            "masks": masks,
        }

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict:
        """Named outputs: x_norm_clstoken, x_norm_regtokens, x_norm_patchtokens, x_prenorm."""
        x = self.prepare_tokens_with_masks(x, masks)
        for blk in self.blocks:
            x = blk(x)
        return self._named_outputs(x, masks)

    def forward_features_list(
        self,
        xs: list[torch.Tensor],
        masks_list: list[torch.Tensor | None] | None = None,
        packed: bool = False,
    ) -> list[dict]:
        """`forward_features` of each resolution group (e.g. global crops, local crops).

        With `packed`, all groups go through each block as one packed sequence with
        block-diagonal attention (DINOv2's sequence packing): one pass of every token-wise
        layer instead of one per group, the same outputs as separate calls.
        """
        if masks_list is None:
            masks_list = [None] * len(xs)
        if len(masks_list) != len(xs):
            raise ValueError(
                f"got {len(xs)} image batches but {len(masks_list)} masks; pass one mask "
                "(or None) per batch."
            )
        if not packed:
            return [self.forward_features(x, m) for x, m in zip(xs, masks_list, strict=True)]
        tokens = [self.prepare_tokens_with_masks(x, m) for x, m in zip(xs, masks_list, strict=True)]
        for blk in self.blocks:
            tokens = blk(tokens)  # a list: packed (through __call__, so wrappers' hooks run)
        return [self._named_outputs(t, m) for t, m in zip(tokens, masks_list, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The final-normed CLS token [B, D], the image embedding."""
        return self.forward_features(x)["x_norm_clstoken"]

    def _block_indices(self, n: int | list[int]) -> list[int]:
        depth = self.n_blocks
        idx = list(range(depth - n, depth)) if isinstance(n, int) else list(n)
        bad = [i for i in idx if not -depth <= i < depth]
        if not idx or bad:
            raise ValueError(f"block indices {n} are out of range for a {depth}-block ViT.")
        return [i % depth for i in idx]

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | list[int] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple:
        """Patch tokens of the last `n` blocks (int) or of the listed blocks, like DINOv2.

        Returns a tuple of [B, N, D] (or [B, D, h, w] with `reshape`), or of
        (patch, cls) pairs with `return_class_token`: DINOv2's convention, kept so that
        code written against DINOv2 runs unchanged.
        """
        take = set(self._block_indices(n))
        B, _, H, W = x.shape
        x = self.prepare_tokens_with_masks(x)
        outputs = []
        for i, blk in enumerate(self.blocks[: max(take) + 1]):
            x = blk(x)
            if i in take:
                outputs.append(self.norm(x) if norm else x)
        cls_tokens = [out[:, 0] for out in outputs]
        outputs = [out[:, 1 + self.num_register_tokens :] for out in outputs]
        if reshape:
            h, w = H // self.patch_size, W // self.patch_size
            outputs = [o.reshape(B, h, w, -1).permute(0, 3, 1, 2).contiguous() for o in outputs]
        if return_class_token:
            return tuple(zip(outputs, cls_tokens, strict=True))
        return tuple(outputs)

    def get_selfattention(self, x: torch.Tensor, block_index: int = -1) -> torch.Tensor:
        """Softmax attention weights [B, heads, N, N] of one block (tokens: CLS, regs, patches)."""
        idx = self._block_indices([block_index])[0]
        x = self.prepare_tokens_with_masks(x)
        for blk in self.blocks[:idx]:
            x = blk(x)
        return self.blocks[idx].attention(x)

    def get_last_selfattention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights of the last block, the source of DINO's attention maps."""
        return self.get_selfattention(x, -1)


def _vit(sizes: tuple[int, int, int], default_ffn: str, **kwargs: Any) -> VisionTransformer:
    """A factory's sizes, unless the caller overrides them (custom ViTs from the config)."""
    if kwargs.get("ffn", "auto") == "auto":
        kwargs["ffn"] = default_ffn
    for key, value in zip(("embed_dim", "depth", "num_heads"), sizes, strict=True):
        kwargs.setdefault(key, value)
    return VisionTransformer(**kwargs)


def vit_tiny(patch_size: int = 16, **kwargs: Any) -> VisionTransformer:
    """ViT-Ti: 192 dim, 12 blocks, 3 heads (5.5M parameters)."""
    return _vit((192, 12, 3), "mlp", patch_size=patch_size, **kwargs)


def vit_small(patch_size: int = 16, **kwargs: Any) -> VisionTransformer:
    """ViT-S: 384 dim, 12 blocks, 6 heads (21M parameters)."""
    return _vit((384, 12, 6), "mlp", patch_size=patch_size, **kwargs)


def vit_base(patch_size: int = 16, **kwargs: Any) -> VisionTransformer:
    """ViT-B: 768 dim, 12 blocks, 12 heads (85M parameters)."""
    return _vit((768, 12, 12), "mlp", patch_size=patch_size, **kwargs)


def vit_large(patch_size: int = 16, **kwargs: Any) -> VisionTransformer:
    """ViT-L: 1024 dim, 24 blocks, 16 heads (300M parameters)."""
    return _vit((1024, 24, 16), "mlp", patch_size=patch_size, **kwargs)


def vit_giant2(patch_size: int = 16, **kwargs: Any) -> VisionTransformer:
    """ViT-g/2 of DINOv2: 1536 dim, 40 blocks, 24 heads, SwiGLU FFN (1.1B parameters)."""
    return _vit((1536, 40, 24), "swiglu", patch_size=patch_size, **kwargs)
