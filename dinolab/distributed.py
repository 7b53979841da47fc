"""Thin wrappers over torch.distributed that degrade to single-process no-ops.

Losses and the trainer call these unconditionally, so the same code runs under `torchrun`
(gloo or nccl) and as a plain `python` process without an initialised process group.

Launch: `torchrun --nproc_per_node=N [--nnodes M --rdzv-endpoint HOST:PORT] -m dinolab pretrain
...`, or `srun` with one task per GPU (SLURM_* variables are mapped to torchrun's). The run
directory must be on a filesystem every node sees. A collective that waits longer than
`train.dist_timeout_s` (a dead or hung peer) raises `DistributedError` instead of hanging.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

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


def launch_world_size() -> int:
    """Processes this run is launched with, known before the process group starts: the group's
    size once initialised, else torchrun's WORLD_SIZE, else srun's SLURM_NTASKS, else 1."""
    if is_dist():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1")))


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


# ----------------------------------------------------------------- launch
class DistributedError(RuntimeError):
    """A collective failed or timed out: another process died or hangs."""


def _slurm_env() -> None:
    """Map `srun` variables to torchrun's when torchrun did not set them (one task per GPU)."""
    env = os.environ
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) <= 1:
        return
    env["RANK"], env["WORLD_SIZE"] = env["SLURM_PROCID"], env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    if "MASTER_ADDR" not in env:
        nodes = env.get("SLURM_JOB_NODELIST", "localhost")
        try:
            out = subprocess.run(
                ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True
            )
            env["MASTER_ADDR"] = out.stdout.split()[0]
        except (OSError, IndexError):
            env["MASTER_ADDR"] = nodes.split(",")[0]
    env.setdefault("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000))


def local_rank() -> int:
    """This process's rank on its machine (selects its GPU)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_world_size() -> int:
    """Processes on this machine (they share its cores)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; under torchrun each process takes its LOCAL_RANK GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"device '{name}' is not a device name: use auto, cpu, cuda or cuda:N."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device '{name}' asks for a GPU, but PyTorch sees no CUDA GPU on this machine: use "
            "auto or cpu (--device cpu, train.device=cpu)."
        )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank())
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device '{device}' does not exist: this machine has {torch.cuda.device_count()} "
            "CUDA GPU(s), cuda:0 to cuda:N-1."
        )
    return device


def init_from_env(backend: str = "auto", timeout_s: float = 1800, use_cuda: bool = False) -> bool:
    """Join the process group that torchrun or SLURM describe; True when distributed.

    A no-op for a plain `python` process (WORLD_SIZE unset or 1) and when already initialised.
    """
    if is_dist():
        return True
    _slurm_env()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend == "auto":
        backend = "nccl" if use_cuda else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"train.dist_backend must be auto, gloo or nccl, not '{backend}'.")
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    atexit.register(_destroy)
    if get_rank() > 0:  # rank 0 speaks for the job; the others only warn
        logging.getLogger("dinolab").setLevel(logging.WARNING)
    return True


def _destroy() -> None:
    if is_dist():
        dist.destroy_process_group()


@functools.cache
def _cpu_group() -> Any:
    """A gloo group for small host-side collectives (counts), so they never sync the GPU."""
    if dist.get_backend() == "gloo":
        return dist.group.WORLD
    return dist.new_group(backend="gloo")


def gather_ints(value: int) -> list[int]:
    """`value` from every process, in rank order, over the CPU group ([value] alone)."""
    return [row[0] for row in gather_int_lists([value])]


def gather_int_lists(values: list[int]) -> list[list[int]]:
    """`values` (the same length everywhere) from every process, in rank order, in one
    collective over the CPU group ([values] alone)."""
    if not is_dist():
        return [list(values)]
    out = [torch.zeros(len(values), dtype=torch.int64) for _ in range(get_world_size())]
    with collective_errors("counting images"):
        dist.all_gather(out, torch.tensor(values, dtype=torch.int64), group=_cpu_group())
    return [[int(v) for v in t] for t in out]


def check_same_config(text: str) -> None:
    """Raise on every rank when the resolved configs differ (e.g. overrides on one node only)."""
    if not is_dist():
        return
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "little")
    digests = gather_ints(digest)
    if len(set(digests)) == 1:
        return
    texts: list[Any] = [None] * get_world_size()
    dist.all_gather_object(texts, text, group=_cpu_group())
    odd = [r for r, d in enumerate(digests) if d != digests[0]]
    diff = sorted(_keyed_lines(texts[0]) ^ _keyed_lines(texts[odd[0]]))[:6]
    raise ValueError(
        f"Ranks {odd} were started with a config different from rank 0's (differing lines: "
        f"{diff}): give every process the same command line and preset."
    )


_LOST_PEER = re.compile(r"timed out|timeout|connection (closed|reset)|by peer|aborted", re.I)


def gather_objects(obj: Any) -> list[Any]:
    """`obj` from every process, in rank order (small picklable objects only)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj, group=_cpu_group())
    return out


def _keyed_lines(yaml_text: str) -> set[str]:
    """'section.key: value' for each line of a two-level YAML dump (for readable diffs)."""
    section, out = "", set()
    for line in yaml_text.splitlines():
        if line and not line[0].isspace():
            section = line.strip()[:-1] + "." if line.rstrip().endswith(":") else ""
            if section:
                continue
        out.add(section + line.strip())
    return out


@contextlib.contextmanager
def collective_errors(what: str) -> Iterator[None]:
    """Turn a backend timeout / lost peer into one DistributedError that says what to check."""
    try:
        yield
    except (RuntimeError, dist.DistError) as e:
        lost = isinstance(e, dist.DistError) or _LOST_PEER.search(str(e)) is not None
        if isinstance(e, DistributedError) or not is_dist() or not lost:
            raise
        raise DistributedError(
            f"Rank {get_rank()} of {get_world_size()} failed while {what}: another process "
            f"died or stopped answering (first error: {str(e).strip().splitlines()[0][:200]}). "
            "Check the other ranks' logs; resume with `dinolab pretrain --resume RUN_DIR`."
        ) from e
