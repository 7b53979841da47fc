"""The pretraining sampler: a seeded permutation per epoch, sharded over ranks, resumable.

It yields `(index, sample_seed)`; the dataset seeds the augmentation with sample_seed, so the
views of a sample depend only on (seed, epoch, index): not on the worker that loads it, nor on
how many workers there are, nor on whether the run was resumed mid-epoch.

Epoch layout: global step j takes a slice of the epoch's permutation and rank r takes every
world_size-th element of that slice (strided shard), so all ranks run the same number of steps.
drop_last=True cuts the epoch to whole global batches (batch_size x world_size); the tail waits
for another epoch's order. drop_last=False keeps a smaller last step, split so that ranks differ
by at most one image: every index appears exactly once per epoch across ranks, no padding. When
the tail is smaller than world_size it is merged with the step before and the two are split
evenly, so no rank ever gets an empty batch (the trainer weights ranks by their image counts).
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
    """Per-epoch seeded shuffle, the same number of steps on every rank, mid-epoch resume."""

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
                "train.batch_size (or train.global_batch_size) or add images"
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
        if min(self._step_sizes()) < world_size:
            raise ValueError(
                f"The dataset has {num_samples} images and {world_size} processes: some process "
                "would get an empty batch; add images, raise train.batch_size to 2 or more, or "
                "set data.drop_last=true"
            )

    @property
    def batches_per_epoch(self) -> int:
        """Batches each rank yields in a full epoch (independent of set_start_batch)."""
        return len(self._step_sizes())

    def _step_sizes(self) -> list[int]:
        """Images in each global step of the epoch."""
        global_batch = self.batch_size * self.world_size
        full, tail = divmod(self.num_samples, global_batch)
        if self.drop_last or tail == 0:
            return [global_batch] * full
        if tail >= self.world_size or full == 0:
            return [global_batch] * full + [tail]
        merged = global_batch + tail  # >= 2 * world_size once batch_size >= 2
        return [global_batch] * (full - 1) + [merged - merged // 2, merged // 2]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's order; resets the start batch to 0."""
        self.epoch = epoch
        self.start_batch = 0

    def set_start_batch(self, k: int) -> None:
        """Skip the first k batches of this rank's shard in the current epoch (resume)."""
        if not 0 <= k <= self.batches_per_epoch:
            raise ValueError(f"start batch {k} is outside 0..{self.batches_per_epoch}")
        self.start_batch = k

    def epoch_batches(self) -> list[np.ndarray]:
        """This rank's index batches for the current epoch, after the start-batch skip."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).numpy()
        else:
            order = np.arange(self.num_samples)
        bounds = np.cumsum([0, *self._step_sizes()])
        steps = zip(bounds[:-1], bounds[1:], strict=True)
        batches = [order[a:b][self.rank :: self.world_size] for a, b in steps]
        return batches[self.start_batch :]

    def epoch_indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, after the start-batch skip."""
        batches = self.epoch_batches()
        return np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)

    def batches(self) -> Iterator[list[tuple[int, int]]]:
        """The epoch as lists of `(index, sample_seed)`, one per step (a DataLoader batch)."""
        for b in self.epoch_batches():
            yield list(
                zip(b.tolist(), sample_seeds(self.seed, self.epoch, b).tolist(), strict=True)
            )

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self.epoch_indices()
        seeds = sample_seeds(self.seed, self.epoch, indices)
        return zip(indices.tolist(), seeds.tolist(), strict=True)

    def __len__(self) -> int:
        sizes = self._step_sizes()[self.start_batch :]
        w, r = self.world_size, self.rank
        return sum(max(0, (n - r + w - 1) // w) for n in sizes)


class EpochBatchSampler(Sampler):
    """`EpochSampler.batches()` as a DataLoader `batch_sampler` (steps may differ in size)."""

    def __init__(self, sampler: EpochSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return self.sampler.batches()

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch - self.sampler.start_batch
