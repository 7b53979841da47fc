"""The pretraining sampler: a seeded permutation per epoch, sharded over ranks, resumable.

It yields `(index, sample_seed)`; the dataset seeds the augmentation with sample_seed, so the
views of a sample depend only on (seed, epoch, index): not on the worker that loads it, nor on
how many workers there are, nor on whether the run was resumed mid-epoch.

Epoch layout: the permutation is cut to whole global batches (batch_size x world_size).
drop_last=True drops the incomplete last global batch (those images wait for another epoch's
order); drop_last=False pads it with the first images of the permutation, so repeats appear
only in the last batch of the epoch. Global batch j is permutation[j*G:(j+1)*G]; rank r takes
every world_size-th element of it (strided shard), so each rank gets the same number of batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

_MASK63 = np.uint64((1 << 63) - 1)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_seeds(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """63-bit seeds, a hash of (seed, epoch, index) for each index (vectorised, ~20 ns each)."""
    with np.errstate(over="ignore"):
        key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        key = _mix64(key ^ np.uint64(epoch & 0xFFFFFFFFFFFFFFFF))
        return _mix64(key ^ np.asarray(indices, dtype=np.uint64)) & _MASK63


class EpochSampler(Sampler):
    """Per-epoch seeded shuffle, equal whole batches on every rank, mid-epoch resume."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if batch_size < 1:
            raise ValueError(f"train.batch_size={batch_size} must be >= 1")
        global_batch = batch_size * world_size
        if num_samples < 1 or (drop_last and num_samples < global_batch):
            raise ValueError(
                f"The dataset has {num_samples} images, fewer than one global batch of "
                f"{global_batch} ({batch_size} per process x {world_size} processes): lower "
                "train.batch_size or add images"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        """Batches each rank yields in a full epoch (independent of set_start_batch)."""
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return self.num_samples // global_batch
        return -(-self.num_samples // global_batch)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's order; resets the start batch to 0."""
        self.epoch = epoch
        self.start_batch = 0

    def set_start_batch(self, k: int) -> None:
        """Skip the first k batches of this rank's shard in the current epoch (resume)."""
        if not 0 <= k <= self.batches_per_epoch:
            raise ValueError(f"start batch {k} is outside 0..{self.batches_per_epoch}")
        self.start_batch = k

    def epoch_indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, after the start-batch skip."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).numpy()
        else:
            order = np.arange(self.num_samples)
        total = self.batches_per_epoch * self.batch_size * self.world_size
        if total > len(order):  # pad (drop_last=False) by wrapping around the permutation
            order = np.resize(order, total)
        shard = order[:total][self.rank :: self.world_size]
        return shard[self.start_batch * self.batch_size :]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self.epoch_indices()
        seeds = sample_seeds(self.seed, self.epoch, indices)
        return zip(indices.tolist(), seeds.tolist(), strict=True)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size
