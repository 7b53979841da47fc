"""Layer-wise lr decay (BEiT / DeiT III): layers near the input keep more of what pretraining
learned, so they get smaller learning rates.

Layer ids: 0 = the input layers (patch embedding, CLS / register / mask tokens, position
embedding; a ResNet's stem), then one id per ViT block (`blocks.k` -> k + 1) or ResNet stage
(`stages.k` -> k + 1 for small_resnet, `layerN` -> N for torchvision ResNets), and the last id
for what follows them (the ViT's final norm, the classifier head). With L + 1 the last id, layer
i's lr is `lr * decay ** (L + 1 - i)`: the head gets the full lr. Biases, norms, tokens and
position embeddings get no weight decay (every 1-d parameter, as in DeiT).
"""

from __future__ import annotations

import re

from torch import nn

_BLOCK = re.compile(r"(?:^|\.)(?:blocks|stages)\.(\d+)\.")
_RESNET_LAYER = re.compile(r"(?:^|\.)layer(\d+)\.")
_NO_DECAY_NAMES = ("cls_token", "pos_embed", "register_tokens", "mask_token")


def layer_id(name: str, num_layers: int) -> int:
    """The layer id of parameter `name` of a Classifier (`backbone.*` / `head.*`);
    `num_layers` = the number of blocks or stages + 1 (the id of the head)."""
    if name.startswith("head."):
        return num_layers
    name = name.removeprefix("backbone.")
    if m := _BLOCK.search(name):
        return int(m[1]) + 1
    if m := _RESNET_LAYER.search(name):
        return int(m[1])
    if name.startswith("norm.") or name.startswith("fc_norm."):
        return num_layers
    return 0


def count_layers(model: nn.Module) -> int:
    """Blocks or stages of `model`'s backbone + 1: the head's layer id."""
    ids = [layer_id(n, 10**6) for n, _ in model.named_parameters() if not n.startswith("head.")]
    return max((i for i in ids if i < 10**6), default=0) + 1


def no_weight_decay(name: str, ndim: int) -> bool:
    """Biases, norm scales and the token / position parameters are not decayed."""
    return ndim <= 1 or name.endswith(".bias") or any(k in name for k in _NO_DECAY_NAMES)


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups, one per (layer id, decayed or not), each with `lr_scale`, `layer_id`
    and `weight_decay`; only parameters that require gradients."""
    num_layers = count_layers(model)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, num_layers)
        skip = no_weight_decay(name, p.ndim)
        group = groups.setdefault(
            (lid, skip),
            {
                "params": [],
                "names": [],
                "layer_id": lid,
                "lr_scale": layer_decay ** (num_layers - lid),
                "weight_decay": 0.0 if skip else weight_decay,
            },
        )
        group["params"].append(p)
        group["names"].append(name)
    return [groups[k] for k in sorted(groups)]
