"""What a training process runs on: device, precision, threads, its share of the batch, and the
data loader over its shard; resolved once per process, before the model is built."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from dinolab import distributed as dist
from dinolab.config.schema import Config
from dinolab.data import collate_multicrop
from dinolab.data.collate import BatchAugment
from dinolab.data.samplers import EpochBatchSampler, EpochSampler
from dinolab.distributed import resolve_device
from dinolab.hardware import ThreadPlan, apply_threads, plan_threads, resolve_precision
from dinolab.models.layers.attention import attention_note
from dinolab.train.interrupt import ignore_stop_signals


@dataclass
class Runtime:
    """The resolved device, precision and thread plan, with the reasons (logged and written at
    the top of the run's config.yaml)."""

    device: torch.device
    precision: str
    threads: ThreadPlan
    notes: list[str]


def resolve_runtime(cfg: Config) -> Runtime:
    """Resolve `train.device / precision / threads` for this machine and apply the threads."""
    t = cfg.train
    device = resolve_device(t.device)
    precision, precision_note = resolve_precision(t.precision, device)
    threads = plan_threads(
        t.threads,
        cfg.data.num_workers,
        procs_per_machine=dist.local_world_size(),
        device_type=device.type,
    )
    apply_threads(threads)
    notes = [
        precision_note,
        f"threads: {threads.reason}",
        f"attention: {attention_note(cfg.model.attn_impl, device, precision)}",
    ]
    return Runtime(device, precision, threads, notes)


def per_process_batch(cfg: Config, world_size: int) -> int:
    """train.batch_size, or train.global_batch_size split over the processes."""
    total = cfg.train.global_batch_size
    if total <= 0:
        return cfg.train.batch_size
    if total % world_size:
        raise ValueError(
            f"train.global_batch_size={total} does not split over {world_size} processes: "
            "choose a multiple of the process count."
        )
    return total // world_size


def build_loader(
    dataset: Dataset,
    sampler: EpochSampler,
    masks,
    runtime: Runtime,
    seed: int,
    augment: BatchAugment | None = None,
) -> DataLoader:
    """Batches of this process's shard, in the sampler's resumable order (`masks`: the iBOT
    mask drawer or None; `augment`: the batched multi-crop, run in the workers, or None)."""
    workers = runtime.threads.num_workers
    return DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(sampler),
        num_workers=workers,
        collate_fn=functools.partial(collate_multicrop, masks=masks, augment=augment),
        worker_init_fn=ignore_stop_signals,  # the signal is the main process's to handle
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=workers > 0,  # keeps decoded-image caches across epochs
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # keep the global RNG untouched
    )
