"""AdamW for DINO: parameter groups, per-step schedules, gradient clipping, frozen head.

Follows the released DINO code: no weight decay on biases and 1-D parameters (norms,
LayerScale), lr and wd set from the schedules every iteration, each parameter's gradient
clipped to `max_norm` on its own (DINOv2: one norm per module, `clip_module_norms`), and the
head's last layer frozen for the first epoch(s).
Starting from existing weights (`model.init`), the backbone can be frozen for the first epochs
while the fresh heads warm up, and trained at a lower lr afterwards (`backbone_lr_mult`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from dinolab.train.student_set import StudentSet

EMBEDDING_NAMES = ("pos_embed", "patch_embed", "mask_token", "cls_token", "register_tokens")


def lr_multiplier(name: str, depth: int, layer_decay: float, patch_embed_lr_mult: float) -> float:
    """DINOv2's per-parameter lr factor: layer-wise decay, times 0.2 for the patch embedding.

    Embeddings count as layer 0, block i as layer i + 1, the final norm and everything outside
    the backbone (heads) as layer depth + 1; the factor is layer_decay ** (depth + 1 - layer).
    """
    rel = name.split("backbone.", 1)[1] if "backbone." in name else name
    layer = depth + 1
    if rel.startswith(EMBEDDING_NAMES):
        layer = 0
    elif rel.startswith("blocks."):
        layer = int(rel.split(".")[1]) + 1
    mult = layer_decay ** (depth + 1 - layer)
    if rel.startswith("patch_embed"):
        mult *= patch_embed_lr_mult
    return mult


def param_groups(
    model: nn.Module,
    layer_decay: float = 1.0,
    patch_embed_lr_mult: float = 1.0,
    backbone_lr_mult: float = 1.0,
    last_layer_freeze: Mapping[int, int] | None = None,
) -> list[dict]:
    """AdamW groups: regularised weights, and biases / 1-D parameters without decay.

    Frozen parameters (requires_grad False) are left out. With layer-wise lr decay, a
    patch-embedding lr factor (DINOv2) or a backbone lr factor (parameters under `backbone.`),
    each of the two groups is split further by `lr_multiplier`, which `apply_schedules`
    honours (as it does `wd_multiplier`). `last_layer_freeze` (id(parameter) -> epochs, the
    DINOv2 rule) puts those parameters in groups of their own whose lr `apply_schedules` holds
    at 0 while epoch < `freeze_epochs`. A `StudentSet` gets each network's own groups (named
    `NAME/group`), so one AdamW steps every network exactly as an AdamW of its own would.
    """
    if isinstance(model, StudentSet):
        args = (layer_decay, patch_embed_lr_mult, backbone_lr_mult, last_layer_freeze)
        return [
            {**g, "name": f"{key}/{g['name']}"}
            for key, net in model.items()
            for g in param_groups(net, *args)
        ]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    freeze = dict(last_layer_freeze or {})
    if layer_decay == 1.0 and patch_embed_lr_mult == 1.0 and backbone_lr_mult == 1.0 and not freeze:
        regularized = [p for n, p in named if not _no_decay(n, p)]
        not_regularized = [p for n, p in named if _no_decay(n, p)]
        return [
            {"params": regularized, "apply_wd": True, "name": "decay"},
            {"params": not_regularized, "apply_wd": False, "weight_decay": 0.0, "name": "no_decay"},
        ]
    blocks = [int(n.split("blocks.", 1)[1].split(".")[0]) for n, _ in named if "blocks." in n]
    depth = max(blocks) + 1 if blocks else 0
    groups: dict[tuple[bool, float, int], dict] = {}
    for name, p in named:
        decay = not _no_decay(name, p)
        mult = lr_multiplier(name, depth, layer_decay, patch_embed_lr_mult)
        if _in_backbone(name):
            mult *= backbone_lr_mult
        epochs = freeze.get(id(p), -1)
        key = (decay, round(mult, 12), epochs)
        if key not in groups:
            tag = "decay" if decay else "no_decay"
            groups[key] = {"params": [], "apply_wd": decay, "lr_multiplier": mult,
                           "name": f"{tag}_lr{mult:.3g}"}  # fmt: skip
            if epochs >= 0:
                groups[key].update(freeze_epochs=epochs, name=f"{tag}_last_layer_{epochs}ep")
            if not decay:
                groups[key]["weight_decay"] = 0.0
        groups[key]["params"].append(p)
    return list(groups.values())


def _in_backbone(name: str) -> bool:
    return name.startswith("backbone.") or ".backbone." in name


def _no_decay(name: str, p: Tensor) -> bool:
    """Biases and 1-D parameters (norms, tokens, layer scales) take no weight decay."""
    return name.endswith(".bias") or p.ndim <= 1


def build_optimizer(
    model: nn.Module,
    betas: Sequence[float] = (0.9, 0.999),
    layer_decay: float = 1.0,
    patch_embed_lr_mult: float = 1.0,
    backbone_lr_mult: float = 1.0,
    last_layer_freeze: Mapping[int, int] | None = None,
) -> torch.optim.AdamW:
    """AdamW over `param_groups(model, ...)`; lr and wd start at 0, set by `apply_schedules`.

    Uses the fused kernel when every parameter is on CUDA, the multi-tensor one otherwise.
    """
    groups = param_groups(
        model, layer_decay, patch_embed_lr_mult, backbone_lr_mult, last_layer_freeze
    )
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(
            "The model has no trainable parameters: check that requires_grad is not disabled."
        )
    params = [p for g in groups for p in g["params"]]
    on_cuda = all(p.device.type == "cuda" for p in params)
    kernel = {"fused": True} if on_cuda else {"foreach": True}
    return torch.optim.AdamW(groups, lr=0.0, weight_decay=0.0, betas=tuple(betas), **kernel)


def apply_schedules(optimizer: torch.optim.Optimizer, lr: float, wd: float, epoch: int = 0) -> None:
    """Set this step's lr on every group and wd on the groups that apply it.

    A group without an `apply_wd` key is treated as regularised. A group with `freeze_epochs`
    (a DINOv2 last layer) gets lr 0 while epoch < freeze_epochs: its weights stay put while
    AdamW's moments keep accumulating its gradients, as in facebookresearch/dinov2.
    """
    for g in optimizer.param_groups:
        frozen = epoch < g.get("freeze_epochs", 0)
        g["lr"] = 0.0 if frozen else lr * g.get("lr_multiplier", 1.0)
        if g.get("apply_wd", True):
            g["weight_decay"] = wd * g.get("wd_multiplier", 1.0)


@torch.no_grad()
def other_groups_error(path: str | Path, how: str) -> ValueError:
    """The sentence for a checkpoint whose optimizer has other parameter groups than this run
    (`how`, e.g. "2 vs 3"): a DINOv2 checkpoint saved before its heads' last layers got groups
    of their own (the lr-0 freeze) has fewer, and its AdamW state fits no parameter here."""
    return ValueError(
        f"'{path}' holds optimizer state for other parameter groups than this run has ({how}; "
        "DINOv2 checkpoints saved before the last-layer freeze by lr 0 do), so it cannot be "
        "resumed: start a new run, or start one from its weights with "
        f"model.init={Path(path).parent} (fresh heads and optimizer)."
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict, path: Path) -> None:
    """`optimizer.load_state_dict(saved)`, or `other_groups_error` when the groups differ."""
    theirs = [len(g["params"]) for g in saved.get("param_groups", [])]
    ours = [len(g["params"]) for g in optimizer.param_groups]
    if theirs != ours:
        how = f"{len(theirs)} vs {len(ours)}" if len(theirs) != len(ours) else "other sizes"
        raise other_groups_error(path, how)
    optimizer.load_state_dict(saved)


def clip_gradients(model: nn.Module, max_norm: float) -> Tensor:
    """Clip each parameter's gradient to L2 norm `max_norm` separately (DINO), in place.

    Vectorised with foreach kernels and free of host syncs. Returns the total gradient norm
    before clipping (a 0-dim tensor, for logging). `max_norm <= 0` only measures.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    device = grads[0].device
    total = torch.linalg.vector_norm(torch.stack([n.to(device, torch.float32) for n in norms]))
    if max_norm > 0:
        coefs = torch._foreach_add(norms, 1e-6)
        torch._foreach_reciprocal_(coefs)
        torch._foreach_mul_(coefs, max_norm)
        torch._foreach_clamp_max_(coefs, 1.0)
        torch._foreach_mul_(grads, coefs)
    return total


def clip_units(network: nn.Module) -> list[nn.Module]:
    """The modules DINOv2 clips as one each: the network's children, a ModuleDict of heads
    expanded (backbone, DINO head, iBOT head); a network without children is one unit; a
    `StudentSet` the units of each of its networks."""
    if isinstance(network, StudentSet):
        return [u for net in network.values() for u in clip_units(net)]
    units: list[nn.Module] = []
    for child in network.children():
        units.extend(child.values() if isinstance(child, nn.ModuleDict) else [child])
    return units or [network]


@torch.no_grad()
def clip_module_norms(network: nn.Module, max_norm: float) -> Tensor:
    """Clip each unit's gradients (`clip_units`) to one global L2 norm `max_norm` (DINOv2).

    Per unit the same rule as `torch.nn.utils.clip_grad_norm_` (scale by max_norm /
    (norm + 1e-6) when above), without host syncs. Returns the total norm before clipping.
    `max_norm <= 0` only measures.
    """
    groups = [[p.grad for p in u.parameters() if p.grad is not None] for u in clip_units(network)]
    groups = [g for g in groups if g]
    if not groups:
        return torch.zeros(())
    device = groups[0][0].device
    norms = []
    for grads in groups:
        per_tensor = [n.to(device, torch.float32) for n in torch._foreach_norm(grads)]
        norm = torch.linalg.vector_norm(torch.stack(per_tensor))
        norms.append(norm)
        if max_norm > 0:
            coef = (max_norm / (norm + 1e-6)).clamp_max(1.0)
            torch._foreach_mul_(grads, coef)
    return torch.linalg.vector_norm(torch.stack(norms))


def cancel_last_layer_gradients(module: nn.Module, epoch: int, freeze_epochs: int) -> None:
    """Drop the gradients of every `last_layer` parameter while epoch < freeze_epochs.

    DINO keeps the prototypes fixed for the first epoch, which stabilises early training.
    `module` may be the head or any module containing it (names are matched on
    "last_layer"). With grad None, AdamW leaves those parameters and their moments alone.
    """
    if epoch >= freeze_epochs:
        return
    found = False
    for name, p in module.named_parameters():
        if "last_layer" in name:
            p.grad = None
            found = True
    if not found:
        raise ValueError(
            f"{type(module).__name__} has no 'last_layer' parameters to freeze: pass the DINO "
            "head (or the network containing it), or set head.freeze_last_layer_epochs=0."
        )


def cancel_backbone_gradients(module: nn.Module, epoch: int, freeze_epochs: int) -> None:
    """Drop the gradients of every backbone parameter while epoch < freeze_epochs.

    Warms fresh heads up on a pretrained backbone (`model.init`) before the backbone moves:
    new random heads send large, meaningless gradients into it that wreck its features
    (facebookresearch/dinov2 issue #204). `module` is the student or the meta-architecture
    (names are matched on "backbone."); with grad None, AdamW leaves the backbone and its
    moments alone, and the EMA teacher's backbone stays equal to it. BatchNorm running
    statistics still adapt.
    """
    if epoch >= freeze_epochs:
        return
    found = False
    for name, p in module.named_parameters():
        if _in_backbone(name):
            p.grad = None
            found = True
    if not found:
        raise ValueError(
            f"{type(module).__name__} has no 'backbone' parameters to freeze: pass the student "
            "network, or set train.freeze_backbone_epochs=0."
        )
