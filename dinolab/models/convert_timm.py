"""timm's ViT state-dict layout <-> dinolab's (DINOv2 names), in both directions.

timm keeps registers as `reg_token`, stores the position embedding of register models without
a CLS entry (folded into `cls_token`) and packs ViT-g's SwiGLU as `mlp.fc1` / `mlp.fc2`.
`dinolab.models.convert` reads any layout through here; `dinolab.exporters.timm` writes one.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor
StateDict = dict[str, Tensor]


def timm_no_embed_class(sd: StateDict) -> bool:
    """timm register models store the grid position embedding without a CLS entry."""
    n = sd["pos_embed"].shape[1]
    return math.isqrt(n) ** 2 == n and math.isqrt(n - 1) ** 2 != n - 1


def from_timm(sd: StateDict) -> StateDict:
    """timm VisionTransformer keys -> dinolab (the inverse of `to_timm`)."""
    sd = dict(sd)
    if "reg_token" in sd:
        sd["register_tokens"] = sd.pop("reg_token")
    if timm_no_embed_class(sd):  # CLS position folded into cls_token by timm
        pos = sd["pos_embed"]
        sd["pos_embed"] = torch.cat((pos.new_zeros(1, 1, pos.shape[-1]), pos), dim=1)
    if _timm_swiglu(sd):
        sd = {
            k.replace(".mlp.fc1.", ".mlp.w12.").replace(".mlp.fc2.", ".mlp.w3."): v
            for k, v in sd.items()
        }
    return sd


def _timm_swiglu(sd: StateDict) -> bool:
    """timm's packed SwiGLU (ViT-g) has fc1 of width 2 * hidden and fc2 of width hidden."""
    fc1, fc2 = sd.get("blocks.0.mlp.fc1.weight"), sd.get("blocks.0.mlp.fc2.weight")
    return fc1 is not None and fc2 is not None and fc1.shape[0] == 2 * fc2.shape[1]


def to_timm(sd: StateDict) -> StateDict:
    """dinolab ViT keys -> a timm VisionTransformer state dict (num_classes=0).

    Register models become timm's `reg_token` + no-embed-class layout (CLS position folded
    into `cls_token`), exactly what timm's own DINOv2 converter produces. No `mask_token`.
    """
    out = {k: v for k, v in sd.items() if k != "mask_token"}
    if "register_tokens" in out:
        out["reg_token"] = out.pop("register_tokens")
        pos = out.pop("pos_embed")
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
    return {k.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2."): v
            for k, v in out.items()}  # fmt: skip
