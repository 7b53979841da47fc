"""State-dict layouts of DINO / DINOv2 weights and the conversions between them.

dinolab's ViT uses the DINOv2 names, so the published files need only small fixes:
- DINO v1 ViTs (timm-like names) have no `mask_token`: a zero one is added;
- DINOv2 training checkpoints chunk the blocks for FSDP (`blocks.3.9.*` is block 9 in chunk
  3): flattened to `blocks.9.*`;
- wrappers (`module.`, `_orig_mod.`) and the `backbone.` / `head.` halves of full training
  checkpoints are stripped and split;
- the DINO head's weight-norm keys come as `weight_g/weight_v` (old `nn.utils.weight_norm`) or
  `parametrizations.weight.original0/1` (the newer parametrization): both load.
timm (`reg_token`, no-embed-class position embedding for register models:
`dinolab.models.convert_timm`) and HuggingFace transformers (`embeddings.*`, separate q/k/v:
`dinolab.models.convert_hf`) layouts are converted in both directions; their converters are
importable from here too (`convert.from_hf`, `convert.to_timm`, ...).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from dinolab.config.schema import ModelConfig
from dinolab.models.convert_hf import from_hf, to_hf
from dinolab.models.convert_timm import from_timm, timm_no_embed_class, to_timm
from dinolab.models.layers import swiglu_hidden_dim

Tensor = torch.Tensor
StateDict = dict[str, Tensor]
__all__ = [  # the layout converters of convert_hf / convert_timm are part of this module's API
    "VIT_SIZES", "flatten_block_chunks", "from_hf", "from_timm", "infer_model_config",
    "is_resnet", "is_vit", "normalize_resnet", "normalize_vit", "rename_head_keys",
    "split_training_checkpoint", "strip_prefixes", "to_hf", "to_timm",
]  # fmt: skip

# name -> (embed_dim, depth, num_heads); the heads cannot be read from the weights.
VIT_SIZES = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
    "vit_large": (1024, 24, 16),
    "vit_giant2": (1536, 40, 24),
}
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.(.+)$")
_HEAD_RENAMES = {
    "last_layer.parametrizations.weight.original0": "last_layer.weight_g",
    "last_layer.parametrizations.weight.original1": "last_layer.weight_v",
}


def sub_state(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of `state` under `prefix`, prefix removed: a submodule's state dict taken
    from its parent's (e.g. `teacher.backbone.` of a run checkpoint)."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def strip_prefixes(sd: dict[str, Any], prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> dict:
    """Remove DDP / torch.compile wrapper prefixes, repeatedly (`module._orig_mod.x` -> `x`)."""
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[k] = v
    return out


def flatten_block_chunks(sd: StateDict) -> StateDict:
    """`blocks.<chunk>.<i>.*` (DINOv2 FSDP chunks) -> `blocks.<i>.*`; other keys unchanged."""
    out = {}
    for k, v in sd.items():
        m = _CHUNKED.match(k)
        out[f"blocks.{m.group(1)}.{m.group(2)}" if m else k] = v
    return out


def rename_head_keys(sd: StateDict) -> StateDict:
    """Head keys of the parametrized weight norm -> `last_layer.weight_g / weight_v`."""
    return {_HEAD_RENAMES.get(k, k): v for k, v in sd.items()}


def split_training_checkpoint(obj: dict[str, Any], which: str = "teacher") -> tuple[dict, dict]:
    """A full training checkpoint -> (backbone state dict, head state dict) of `which`.

    Understands DINO v1 (`{'student': ..., 'teacher': ...}` with `backbone.` / `head.` keys,
    the student behind `module.`), DINOv2 (`{'model': {'teacher.backbone.*', ...}}`, the head
    as `dino_head.`) and dinolab's own `checkpoint.pth`. A plain state dict is returned as
    the backbone with an empty head.
    """
    if which not in ("teacher", "student"):
        raise ValueError(f"which={which!r} is unknown; use 'teacher' or 'student'.")
    sd: dict[str, Any]
    if which in obj and isinstance(obj[which], dict):
        sd = obj[which]
    elif isinstance(obj.get("model"), dict) and any(
        k.startswith(f"{which}.") for k in obj["model"]
    ):
        sd = {k[len(which) + 1 :]: v for k, v in obj["model"].items() if k.startswith(f"{which}.")}
    elif "teacher" in obj or "student" in obj:
        raise ValueError(f"the checkpoint holds no '{which}' network (keys: {sorted(obj)[:6]}).")
    else:
        sd = obj.get("state_dict", obj.get("model", obj))
    sd = strip_prefixes({k: v for k, v in sd.items() if isinstance(v, Tensor)})
    if not any(k.startswith("backbone.") for k in sd):
        return sd, {}
    backbone = sub_state(sd, "backbone.")
    head: dict[str, Tensor] = {}
    for prefix in ("head.", "dino_head."):
        head = head or sub_state(sd, prefix)
    return backbone, rename_head_keys(head)


def normalize_vit(sd: StateDict) -> StateDict:
    """Any supported ViT layout (original DINO / DINOv2, timm, HF) -> dinolab keys."""
    sd = flatten_block_chunks(strip_prefixes(sd))
    if "embeddings.patch_embeddings.projection.weight" in sd:
        sd = from_hf(sd)
    elif "reg_token" in sd or ("pos_embed" in sd and timm_no_embed_class(sd)):
        sd = from_timm(sd)
    for k in [k for k in sd if k.startswith(("head.", "fc_norm.", "norm_pre."))]:
        sd.pop(k)  # timm classifier / identity leftovers: not part of the backbone
    if "pos_embed" in sd and "mask_token" not in sd:
        sd["mask_token"] = sd["pos_embed"].new_zeros(1, sd["pos_embed"].shape[-1])  # DINO v1
    return sd


def is_resnet(sd: dict[str, Any]) -> bool:
    return "conv1.weight" in sd and any(k.startswith("layer4.") for k in sd)


def is_vit(sd: dict[str, Any]) -> bool:
    return "patch_embed.proj.weight" in sd and "pos_embed" in sd


def normalize_resnet(sd: StateDict) -> StateDict:
    """torchvision / DINO ResNet keys minus the classifier (`fc.*`), which is no backbone part."""
    return {k: v for k, v in strip_prefixes(sd).items() if not k.startswith("fc.")}


def infer_model_config(sd: StateDict, num_heads: int | None = None) -> ModelConfig:
    """The ModelConfig that rebuilds a (normalised) ViT or ResNet-50 state dict."""
    if is_resnet(sd):
        return ModelConfig(arch="resnet50", drop_path_rate=0.0)
    if not is_vit(sd):
        raise ValueError(
            "the weights are neither a ViT (DINO / DINOv2 layout) nor a ResNet: first keys "
            f"{list(sd)[:5]}."
        )
    proj = sd["patch_embed.proj.weight"]
    dim, patch = proj.shape[0], proj.shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    side = math.isqrt(sd["pos_embed"].shape[1] - 1)
    if side * side != sd["pos_embed"].shape[1] - 1:
        raise ValueError(f"pos_embed {tuple(sd['pos_embed'].shape)} is not a square grid + CLS.")
    arch = next((a for a, s in VIT_SIZES.items() if s[0] == dim), "vit_small")
    _, std_depth, std_heads = VIT_SIZES[arch]
    heads = num_heads or (std_heads if VIT_SIZES[arch][0] == dim else max(dim // 64, 1))
    swiglu = "blocks.0.mlp.w12.weight" in sd
    hidden = sd["blocks.0.mlp.w12.weight" if swiglu else "blocks.0.mlp.fc1.weight"].shape[0]
    expected = 2 * swiglu_hidden_dim(dim, 4.0) if swiglu else 4 * dim
    if hidden != expected:
        raise ValueError(f"FFN width {hidden} is not the mlp_ratio 4 width {expected}.")
    regs = sd["register_tokens"].shape[1] if "register_tokens" in sd else 0
    cfg = ModelConfig(
        arch=arch,
        patch_size=patch,
        img_size=side * patch,
        drop_path_rate=0.0,
        num_register_tokens=regs,
        layerscale_init=1e-5 if "blocks.0.ls1.gamma" in sd else None,
        ffn="swiglu" if swiglu else "mlp",
        qkv_bias="blocks.0.attn.qkv.bias" in sd,
    )
    if dim != VIT_SIZES[arch][0] or depth != std_depth or heads != std_heads:
        cfg.embed_dim, cfg.depth, cfg.num_heads = dim, depth, heads
    return cfg
