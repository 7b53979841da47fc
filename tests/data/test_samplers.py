from __future__ import annotations

import numpy as np
import pytest

from dinolab.data.samplers import EpochBatchSampler, EpochSampler, sample_seeds


def shards(n: int, batch: int, world: int, epoch: int = 0, **kw) -> list[list[tuple[int, int]]]:
    out = []
    for rank in range(world):
        s = EpochSampler(n, batch, seed=3, rank=rank, world_size=world, **kw)
        s.set_epoch(epoch)
        out.append(list(s))
        assert len(out[-1]) == len(s)
        assert [len(b) for b in s.batches()] == [len(b) for b in EpochBatchSampler(s)]
        assert sum(len(b) for b in s.batches()) == len(s) and len(EpochBatchSampler(s)) == len(
            list(s.batches())
        )
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [60, 61, 67])
def test_drop_last_every_index_at_most_once(world, n):
    per_rank = shards(n, 4, world, drop_last=True)
    assert len({len(r) for r in per_rank}) == 1
    seen = [i for r in per_rank for i, _ in r]
    assert len(seen) == len(set(seen)) == (n // (4 * world)) * 4 * world


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [48, 49, 50, 59, 61])
def test_no_drop_last_covers_every_index_exactly_once(world, n):
    batch = 4
    per_rank = [
        EpochSampler(n, batch, seed=3, rank=r, world_size=world, drop_last=False)
        for r in range(world)
    ]
    for s in per_rank:
        s.set_epoch(1)
    steps = [[[i for i, _ in b] for b in s.batches()] for s in per_rank]
    assert len({len(st) for st in steps}) == 1  # every rank runs the same number of steps
    seen = [i for st in steps for b in st for i in b]
    assert sorted(seen) == list(range(n))  # no repeats, no drops
    for j in range(len(steps[0])):  # ranks differ by at most one image; none is empty
        sizes = [len(st[j]) for st in steps]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1 and max(sizes) <= batch
    flat = [i for s in per_rank for i, _ in s]
    assert sorted(flat) == list(range(n))


def test_uneven_tail_smaller_than_world_is_merged_not_empty():
    # 17 images, 4 per rank x 4 ranks: the tail of 1 image joins the step before (8 + 9).
    s = [EpochSampler(17, 4, seed=0, rank=r, world_size=4, drop_last=False) for r in range(4)]
    assert s[0]._step_sizes() == [9, 8]
    assert [len(b) for b in s[0].batches()] == [3, 2] and [len(b) for b in s[3].batches()] == [2, 2]


def test_tiny_dataset_without_drop_last_is_one_short_batch():
    (r,) = shards(3, 8, 1, drop_last=False)
    assert sorted(i for i, _ in r) == [0, 1, 2]


def test_epoch_orders():
    a0 = [i for i, _ in shards(50, 5, 1, epoch=0)[0]]
    a0_again = [i for i, _ in shards(50, 5, 1, epoch=0)[0]]
    a1 = [i for i, _ in shards(50, 5, 1, epoch=1)[0]]
    assert a0 == a0_again and a0 != a1 and sorted(a0) == sorted(a1) == list(range(50))
    plain = [i for i, _ in shards(50, 5, 1, shuffle=False)[0]]
    assert plain == list(range(50))


def test_start_batch_skips_exactly_k_batches_and_resets():
    s = EpochSampler(100, 6, seed=1, rank=1, world_size=2)
    s.set_epoch(4)
    full = list(s)
    s.set_start_batch(3)
    assert list(s) == full[18:] and len(s) == len(full) - 18
    s.set_start_batch(s.batches_per_epoch)
    assert list(s) == [] and len(s) == 0
    s.set_epoch(4)
    assert list(s) == full
    with pytest.raises(ValueError, match="start batch 9 is outside 0..8"):
        s.set_start_batch(9)


def test_sample_seeds_depend_only_on_seed_epoch_index():
    one = dict(shards(48, 4, 1, epoch=2)[0])
    for rank in shards(48, 4, 3, epoch=2):  # a different world size: same seed per index
        assert all(one[i] == s for i, s in rank)
    other_epoch = dict(shards(48, 4, 1, epoch=3)[0])
    assert all(one[i] != other_epoch[i] for i in one)
    seeds = sample_seeds(3, 2, np.arange(100_000))
    assert seeds.dtype == np.uint64 and int(seeds.max()) < 2**63
    assert len(np.unique(seeds)) == 100_000
    assert sample_seeds(3, 2, np.array([7]))[0] == seeds[7]
    assert sample_seeds(4, 2, np.array([7]))[0] != seeds[7]


def test_million_samples_is_fast():
    s = EpochSampler(1_000_000, 256, seed=0, rank=0, world_size=4)
    first = next(iter(s))
    assert isinstance(first[0], int) and isinstance(first[1], int)
    assert len(s) == 1_000_000 // 1024 * 256


def test_errors():
    with pytest.raises(ValueError, match="has 10 images, fewer than one global batch of 16"):
        EpochSampler(10, 8, seed=0, world_size=2)
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        EpochSampler(100, 8, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="some process would get an empty batch"):
        EpochSampler(5, 1, seed=0, world_size=2, drop_last=False)
