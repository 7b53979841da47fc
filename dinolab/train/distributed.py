"""Thin wrappers over torch.distributed that degrade to single-process no-ops.

Losses and the trainer call these unconditionally, so the same code runs under `torchrun`
(gloo or nccl) and as a plain `python` process without an initialised process group.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_dist() -> bool:
    """True when a process group is available and initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    """True on rank 0: the process that writes checkpoints, logs and plots."""
    return get_rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` in place over all processes and return it (no-op when not distributed)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Average `t` in place over all processes and return it (no-op when not distributed)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(dist.get_world_size())
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of `t` over all processes, in place (no-op when not distributed)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_dist():
        dist.barrier()
