"""Wrapping the model for scale and speed: DDP or FSDP2, torch.compile, activation checkpointing.

The trainer keeps the plain `DINOMetaArch` for state dicts, EMA and evaluation, and calls the
object returned by `wrap` to run `forward_loss`: a DDP wrapper when several processes share the
model (gradients averaged in backward), the meta-arch itself otherwise. FSDP2 shards the student
and the teacher in place (parameters become DTensors), so clipping and full-weight gathers have
sharded variants here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor
from torch.utils.checkpoint import checkpoint

from dinolab import distributed as dist
from dinolab.config.schema import Config
from dinolab.config.validate import PARALLEL
from dinolab.train.optim import clip_units
from dinolab.train.student_set import networks


class LossModule(nn.Module):
    """`meta.forward_loss` as a module forward, so DDP can wrap it (state-dict keys unchanged)."""

    def __init__(self, meta: nn.Module) -> None:
        super().__init__()
        self.meta = meta

    def forward(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        return self.meta.forward_loss(batch, teacher_temp)


def blocks_of(backbone: nn.Module) -> list[nn.Module]:
    """The repeated units every dinolab backbone lists as `blocks`: ViT blocks, ResNet stages."""
    return list(getattr(backbone, "blocks", ()))


# oneDNN limited to AVX2 (torch 2.14.1) corrupts the heap in the backward of an NHWC 1x1
# strided convolution with 4 input channels (a small_resnet shortcut at embed_dim 32); 8 and
# more are fine, and NCHW is (benchmarks/RESULTS.md, eighth session).
NHWC_MIN_CHANNELS = 8


def uses_channels_last(cfg: Config, model: nn.Module | None = None) -> bool:
    """ResNets run faster with NHWC tensors (cuDNN and oneDNN; small_resnet, 2x48 + 4x24 crops,
    batch 64, bf16 on 2 AVX512-BF16 cores: 0.51 s per step NCHW, 0.41 s NHWC); ViTs patchify.
    Not under FSDP2, which cannot shard NHWC (non-contiguous) weights, nor when `model` (every
    network the run holds: students of a multi-student run share one input format) has a
    strided 1x1 convolution narrower than `NHWC_MIN_CHANNELS` (a oneDNN bug on AVX2, above)."""
    arch = cfg.model.arch
    resnet = arch.startswith("resnet") or arch == "small_resnet"
    return resnet and cfg.train.parallel != "fsdp" and (model is None or _nhwc_safe(model))


def _nhwc_safe(model: nn.Module) -> bool:
    return not any(
        isinstance(m, nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.stride != (1, 1)
        and m.in_channels < NHWC_MIN_CHANNELS
        for m in model.modules()
    )


@contextlib.contextmanager
def _frozen_batch_stats(block: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise by the batch as in the forward pass (same saved tensors) but
    leave their running statistics as they were: the recomputation in backward must not count
    the batch a second time. Momentum 0 keeps the averages bit for bit; the counter is put back."""
    norms = [
        m
        for m in block.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


def _checkpoint_contexts(block: nn.Module) -> tuple:
    """(forward, recomputation) contexts for `checkpoint`'s `context_fn`."""
    return contextlib.nullcontext(), _frozen_batch_stats(block)


def checkpoint_activations(backbone: nn.Module) -> None:
    """Recompute each block in backward instead of keeping its activations (memory for time).

    Overrides the instance's `forward`, so parameter names and checkpoints are unchanged; the
    recomputation leaves BatchNorm's running statistics as the forward pass left them.
    """
    for blk in blocks_of(backbone):
        contexts = functools.partial(_checkpoint_contexts, blk)
        blk.forward = functools.partial(
            checkpoint, blk.forward, use_reentrant=False, context_fn=contexts
        )


def compile_blocks(backbone: nn.Module) -> None:
    """torch.compile every block in place (one graph per block: works with FSDP and AC)."""
    for blk in blocks_of(backbone) or [backbone]:
        blk.compile()


def wrap(model: nn.Module, cfg: Config, device: torch.device, precision: str = "fp32") -> nn.Module:
    """Apply the speed options and the data-parallel engine; returns what runs the loss."""
    t = cfg.train
    if t.parallel not in PARALLEL:
        raise ValueError(
            f"train.parallel must be one of {', '.join(PARALLEL)}, not '{t.parallel}'."
        )
    if uses_channels_last(cfg, model):
        model.to(memory_format=torch.channels_last)
    if t.activation_checkpointing:
        for net in networks(model.student):  # every student of a multi-student run
            checkpoint_activations(net.backbone)
    if t.compile:
        for net in networks(model.student) + networks(model.teacher):
            compile_blocks(net.backbone)
    if not dist.is_dist():
        return LossModule(model)
    if t.parallel == "fsdp":
        shard(model, cfg, device, precision)
        return LossModule(model)
    from torch.nn.parallel import DistributedDataParallel as DDP

    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn and device.type == "cuda":  # ResNet: batch statistics over the global batch (DINO)
        for net in (model.student, model.teacher):
            nn.SyncBatchNorm.convert_sync_batchnorm(net)  # in place below the root, same params
    # static_graph: the same parameters are unused every step (e.g. mask_token without iBOT);
    # buffers only need rank 0's copy at each forward when BatchNorm keeps running statistics
    # (they are broadcast once at init either way: every rank starts from the same values).
    # forward_sync_buffers replaces torch's deprecated broadcast_buffers (a FutureWarning per
    # process otherwise).
    ids = [device.index] if device.type == "cuda" else None
    return DDP(LossModule(model), device_ids=ids, forward_sync_buffers=has_bn, static_graph=True)


def shard(model: nn.Module, cfg: Config, device: torch.device, precision: str = "fp32") -> None:
    """FSDP2 over blocks, backbone, heads and network, for student and teacher; bf16 if asked.

    Backbone and heads are separate FSDP roots (a meta-arch may call the heads or
    `backbone.forward_features*` directly, never `net.forward`); backbone methods get FSDP's
    hooks too. Parameter lists the meta-arch cached (for the EMA) are pointed at the new
    sharded parameters.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import (
        MixedPrecisionPolicy,
        fully_shard,
        register_fsdp_forward_method,
    )

    before = dict(model.named_parameters())
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    mp = MixedPrecisionPolicy()
    if precision == "bf16":
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    # reshard after forward everywhere: the teacher has no backward that would do it
    kw = {"mesh": mesh, "mp_policy": mp, "reshard_after_forward": True}
    for net in (model.student, model.teacher):
        for blk in blocks_of(net.backbone):
            fully_shard(blk, **kw)
        fully_shard(net.backbone, **kw)
        for name in ("forward_features", "forward_features_list"):
            if hasattr(net.backbone, name):
                register_fsdp_forward_method(net.backbone, name)
        for name, child in net.named_children():
            if name != "backbone":
                parts = child.values() if isinstance(child, nn.ModuleDict) else [child]
                for part in parts:
                    fully_shard(part, **kw)
        if any(True for _ in net.parameters(recurse=False)):  # else backbone/heads are roots
            fully_shard(net, **kw)
    after = dict(model.named_parameters())
    new = {id(p): after[name] for name, p in before.items()}
    for attr, value in vars(model).items():
        if isinstance(value, list) and value and all(isinstance(p, nn.Parameter) for p in value):
            setattr(model, attr, [new.get(id(p), p) for p in value])


def is_sharded(module: nn.Module) -> bool:
    """True when FSDP2 holds `module`'s parameters as DTensors."""
    return any(isinstance(p, DTensor) for p in module.parameters())


@torch.no_grad()
def clip_gradients_sharded(module: nn.Module, max_norm: float) -> Tensor:
    """`optim.clip_gradients` for FSDP2: per-parameter norms from one all-reduce of the shards."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    local = [g.to_local() if isinstance(g, DTensor) else g for g in grads]
    if not local:
        return torch.zeros(())
    sq = torch.stack([n.float() for n in torch._foreach_norm(local)]).square()
    dist.all_reduce_sum(sq)
    norms = sq.sqrt()
    if max_norm > 0:
        coefs = (max_norm / (norms + 1e-6)).clamp_max(1.0)
        torch._foreach_mul_(
            local, [c.to(g.dtype) for c, g in zip(coefs.unbind(), local, strict=True)]
        )
    return sq.sum().sqrt()


@torch.no_grad()
def clip_module_norms_sharded(network: nn.Module, max_norm: float) -> Tensor:
    """`optim.clip_module_norms` for FSDP2: each unit's norm from one all-reduce of the shards."""
    groups = [[p.grad for p in u.parameters() if p.grad is not None] for u in clip_units(network)]
    local = [[g.to_local() if isinstance(g, DTensor) else g for g in gs] for gs in groups if gs]
    if not local:
        return torch.zeros(())
    per_unit = [torch.stack([n.float() for n in torch._foreach_norm(gs)]) for gs in local]
    sq = torch.stack([n.square().sum() for n in per_unit])
    dist.all_reduce_sum(sq)
    norms = sq.sqrt()
    if max_norm > 0:
        coefs = (max_norm / (norms + 1e-6)).clamp_max(1.0)
        for grads, coef in zip(local, coefs.unbind(), strict=True):
            torch._foreach_mul_(grads, coef)
    return sq.sum().sqrt()


def full_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """Every tensor of `module` whole, on the CPU (under FSDP a collective: call on all ranks)."""
    out = {}
    for k, v in module.state_dict().items():
        out[k] = (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu()
    return out
