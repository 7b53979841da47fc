"""HuggingFace transformers' DINOv2 state-dict layout <-> dinolab's, in both directions.

transformers names the embeddings `embeddings.*` and splits q / k / v (and SwiGLU's gate / up)
into separate tensors. The Hub files keep the older names, which transformers >= 5 renames in
memory: both are read. `dinolab.models.convert` reads any layout through here;
`dinolab.exporters.hf` writes this one.
"""

from __future__ import annotations

import re

import torch

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

_HF_BLOCK = {  # the on-disk (Hub) names; transformers >= 5 renames some in memory
    "norm1": "norm1",
    "norm2": "norm2",
    "attention.output.dense": "attn.proj",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "mlp.weights_in": "mlp.w12",
    "mlp.weights_out": "mlp.w3",
}
_HF_BLOCK_V5 = {"attention.o_proj": "attn.proj", "mlp.down_proj": "mlp.w3"}
_HF_PARTS = {  # pieces concatenated into one dinolab tensor, in order
    "attention.attention.query": ("attn.qkv", 0),
    "attention.attention.key": ("attn.qkv", 1),
    "attention.attention.value": ("attn.qkv", 2),
    "attention.q_proj": ("attn.qkv", 0),
    "attention.k_proj": ("attn.qkv", 1),
    "attention.v_proj": ("attn.qkv", 2),
    "mlp.gate_proj": ("mlp.w12", 0),
    "mlp.up_proj": ("mlp.w12", 1),
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_HF_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


def from_hf(sd: StateDict) -> StateDict:
    """transformers Dinov2Model / Dinov2WithRegistersModel keys (Hub files, or the renamed
    in-memory names of transformers >= 5) -> dinolab."""
    sd = {k.removeprefix("dinov2."): v for k, v in sd.items()}
    out: StateDict = {}
    parts: dict[str, dict[int, Tensor]] = {}
    for k, v in sd.items():
        if k in _HF_TOP:
            out[_HF_TOP[k]] = v
            continue
        if k.endswith(".lambda1"):  # encoder.layer.{i}.layer_scale{n}.lambda1
            _, _, i, name, _ = k.split(".")
            out[f"blocks.{i}.{_HF_BLOCK[name + '.lambda1']}"] = v
            continue
        m = _HF_LAYER.match(k)
        if not m:
            continue  # pooler / classifier of task models
        i, name, kind = m.groups()
        if name in _HF_PARTS:
            target, pos = _HF_PARTS[name]
            parts.setdefault(f"blocks.{i}.{target}.{kind}", {})[pos] = v
        elif name in _HF_BLOCK or name in _HF_BLOCK_V5:
            out[f"blocks.{i}.{_HF_BLOCK.get(name) or _HF_BLOCK_V5[name]}.{kind}"] = v
    for key, pieces in parts.items():
        out[key] = torch.cat([pieces[j] for j in sorted(pieces)])
    return out


def to_hf(sd: StateDict) -> StateDict:
    """dinolab ViT keys -> transformers Dinov2(WithRegisters)Model keys as stored on the Hub
    (`attention.attention.query`, ...), which every transformers version reads.

    HF blocks always carry LayerScale: models without it (DINO v1) get gammas of 1.
    """
    inv_top = {v: k for k, v in _HF_TOP.items()}
    inv_block = {v: k for k, v in _HF_BLOCK.items()}
    out: StateDict = {}
    dim = sd["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for k, v in sd.items():
        if k in inv_top:
            out[inv_top[k]] = v
            continue
        _, i, rest = k.split(".", 2)
        base = f"encoder.layer.{i}"
        if rest.startswith("attn.qkv."):
            kind = rest.rsplit(".", 1)[1]
            for name, part in zip(("query", "key", "value"), v.chunk(3), strict=True):
                out[f"{base}.attention.attention.{name}.{kind}"] = part.contiguous()
        elif rest in ("ls1.gamma", "ls2.gamma"):
            out[f"{base}.{inv_block[rest]}"] = v
        else:
            mod, kind = rest.rsplit(".", 1)
            out[f"{base}.{inv_block[mod]}.{kind}"] = v
    for i in range(depth):
        for n in (1, 2):
            out.setdefault(f"encoder.layer.{i}.layer_scale{n}.lambda1", torch.ones(dim))
    return out
