"""What this machine is, and the precision, kernels and threads that are fast on it.

bf16 autocast is only fast where the silicon has it: CUDA GPUs from Ampere on, and CPUs with
AVX512-BF16 or AMX (x86) or the BF16 extension (Arm). Everywhere else torch emulates bf16
(about 30x slower than fp32 on an AVX2-only CPU), so `precision: auto` picks fp32 there.
Every choice comes with its reason, which the trainer logs and writes into the run directory.

The probe reads the CPU flags and asks oneDNN; both must agree for "native". oneDNN honours
`ONEDNN_MAX_CPU_ISA` (e.g. `AVX2`), so capping the ISA makes an AVX-512 machine behave, and be
probed, like an AVX2-only one: that is how the fp32 path is measured on a bf16 machine.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

log = logging.getLogger("dinolab")

PRECISIONS = ("auto", "bf16", "fp32")
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CPUInfo:
    """The CPU as torch and /proc/cpuinfo see it."""

    model: str
    capability: str  # torch's kernel level: DEFAULT, AVX2, AVX512, ...
    cores: int  # cores this process may run on
    native_bf16: bool
    bf16_reason: str  # why native_bf16 is what it is, in words


def _cpu_flags_and_model() -> tuple[set[str], str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set(), platform.processor() or platform.machine()
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key in ("model name", "cpu model") and not model:
            model = value.strip()
    return flags, model or platform.machine()


def available_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _onednn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.lru_cache(maxsize=1)
def probe_cpu() -> CPUInfo:
    """Read the CPU once per process."""
    flags, model = _cpu_flags_and_model()
    capability = torch.backends.cpu.get_cpu_capability()
    onednn = _onednn_bf16()
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        has = [f for f in _X86_BF16_FLAGS if f in flags]
        if not has:
            native, reason = False, "this CPU has no native bf16 (no AVX512-BF16 or AMX)"
        elif not onednn:
            native, reason = False, f"the CPU has {has[0]} but oneDNN will not use it"
        else:
            native, reason = True, f"this CPU has native bf16 ({', '.join(has)})"
    elif machine in ("aarch64", "arm64"):
        native = "bf16" in flags and onednn
        reason = "this CPU has native bf16 (Arm BF16)" if native else "this CPU has no native bf16"
    else:
        native, reason = False, f"bf16 is not known to be native on {machine} CPUs"
    return CPUInfo(model, capability, available_cores(), native, reason)


def resolve_precision(requested: str, device: torch.device | str) -> tuple[str, str]:
    """`auto` -> bf16 or fp32 for `device`, with the reason; explicit values pass through.

    An explicit bf16 where it is emulated still runs, with one warning saying why it is slow.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision '{requested}' is unknown; use one of {', '.join(PRECISIONS)}.")
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        why = "this GPU supports bf16" if native else "this GPU has no native bf16"
    elif device.type == "cpu":
        info = probe_cpu()
        native, why = info.native_bf16, info.bf16_reason
    else:
        native, why = False, f"bf16 autocast is not used on {device.type}"
    if requested == "auto":
        return (
            "bf16" if native else "fp32"
        ), f"precision auto -> {'bf16' if native else 'fp32'}: {why}"
    if requested == "bf16" and not native:
        _warn_once(
            f"precision bf16 requested but {why}: bf16 is emulated and much slower than fp32 "
            "here; use precision auto or fp32."
        )
    return requested, f"precision {requested} (set explicitly; {why})"


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast or nothing, for `precision` (auto / bf16 / fp32) on `device`.

    The one place every forward pass (training, evaluation, extraction, pictures) gets its
    precision from; weights, optimizer and losses stay float32 either way.
    """
    chosen, _ = resolve_precision(precision, device)
    if chosen == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.warning(message)


@dataclass(frozen=True)
class ThreadPlan:
    """torch threads of the main process and data-loader workers, from the core count."""

    torch_threads: int
    num_workers: int
    reason: str


def plan_threads(
    requested_threads: int,
    requested_workers: int,
    cores: int | None = None,
    procs_per_machine: int = 1,
    device_type: str = "cpu",
) -> ThreadPlan:
    """Split this process's share of the cores between torch threads and the data loader.

    Under torchrun the processes of one machine share its cores. Workers run their transforms
    single-threaded, and a busy worker that preempts one intra-op thread stalls all of them at
    the next barrier. CPU training therefore never oversubscribes: up to 2 cores the data is
    loaded in the main process (no worker), from 3 cores one worker per 4 cores and the rest
    for torch. Measured on 2 cores (benchmarks/RESULTS.md): 2 threads + 1 worker ran 119 img/s
    (small_resnet) and 91 (quickstart ViT), 2 threads + no worker 156 and 121. GPU training:
    the GPU does the maths, so the workers get the cores (up to 10, DINO's count). Explicit
    values (> 0 threads, >= 0 workers) win.
    """
    cores = cores or available_cores()
    share = max(1, cores // max(1, procs_per_machine))
    if device_type == "cuda":
        auto_workers = max(1, min(10, share - 1))
        workers = requested_workers if requested_workers >= 0 else auto_workers
        threads = requested_threads if requested_threads > 0 else min(share, 4)
    else:
        auto_workers = 0 if share <= 2 else max(1, min(8, share // 4))
        workers = requested_workers if requested_workers >= 0 else auto_workers
        threads = requested_threads if requested_threads > 0 else max(1, share - workers)
    loading = (
        f"{workers} data worker{'s' * (workers != 1)} (1 thread each)"
        if workers
        else "data loaded in this process (no worker to preempt a torch thread)"
    )
    why = (
        f"{share} of {cores} cores for this process: {threads} torch "
        f"thread{'s' * (threads != 1)}, {loading}"
    )
    if device_type != "cuda" and threads + workers > share + 1:
        why += "; more busy threads than cores, expect contention"
    return ThreadPlan(threads, workers, why)


def apply_threads(plan: ThreadPlan) -> None:
    """Set torch's intra-op threads for this process (idempotent)."""
    if torch.get_num_threads() != plan.torch_threads:
        torch.set_num_threads(plan.torch_threads)


def describe() -> dict:
    """A JSON-able record of the machine for run directories and benchmark tables."""
    info = asdict(probe_cpu())
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info
