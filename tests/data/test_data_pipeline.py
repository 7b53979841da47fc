"""The pieces together in a DataLoader: worker count and mid-epoch resume change nothing."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dinolab.data import (
    BatchedMultiCrop,
    BlockMaskGenerator,
    EpochSampler,
    IBOTBatchMasks,
    MultiCropAugmentation,
    ToUint8Tensor,
    build_dataset,
    collate_multicrop,
)
from tests.data.image_zoo import gradient


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i in range(10):
        img = np.roll(gradient(24, 24), 3 * i, axis=1)
        Image.fromarray(img).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "03.png").write_bytes(b"")  # one broken image
    return tmp_path


def batches(
    folder: Path,
    workers: int,
    start_batch: int = 0,
    masks: IBOTBatchMasks | None = None,
    batched: bool = False,
    **dataset_kw,
) -> list[dict]:
    """The epoch's batches; `batched`: data.augment_impl=batched (views cut in the collate)."""
    transform = ToUint8Tensor() if batched else MultiCropAugmentation(16, 8, 2)
    ds = build_dataset(str(folder), transform=transform, **dataset_kw)
    sampler = EpochSampler(len(ds), batch_size=3, seed=11, drop_last=False)
    sampler.set_epoch(1)
    sampler.set_start_batch(start_batch)
    augment = BatchedMultiCrop(16, 8, 2) if batched else None
    collate = functools.partial(collate_multicrop, masks=masks, augment=augment)
    loader = DataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers, collate_fn=collate)
    return list(loader)


def same(a: dict, b: dict) -> bool:
    return (
        torch.equal(a["indices"], b["indices"])
        and torch.equal(a["global_crops"], b["global_crops"])
        and torch.equal(a["local_crops"], b["local_crops"])
        and a["skipped"] == b["skipped"]
    )


@pytest.mark.parametrize("batched", [False, True])
def test_workers_and_resume_give_identical_batches(folder, batched):
    torch.manual_seed(0)
    serial = batches(folder, workers=0, batched=batched)
    skipped = [e for b in serial for e in b["skipped"]]
    # drop_last=False: every image exactly once (3 + 3 + 3 + 1), the broken one reported
    assert len(serial) == 4 and sum(b["num_images"] for b in serial) + len(skipped) == 10
    assert skipped and all(e.endswith("03.png: empty file (0 bytes)") for e in skipped)
    torch.manual_seed(123)  # the caller's RNG does not matter either
    parallel = batches(folder, workers=2, batched=batched)
    assert all(same(a, b) for a, b in zip(serial, parallel, strict=True))
    resumed = batches(folder, workers=0, start_batch=2, batched=batched)
    assert all(same(a, b) for a, b in zip(serial[2:], resumed, strict=True))


@pytest.mark.parametrize("batched", [False, True])
def test_ibot_masks_ride_in_the_batch_and_survive_workers_and_resume(folder, batched):
    # 16 px global crops of 4 px patches: 4 x 4 grids, every global crop masked
    masks = IBOTBatchMasks(BlockMaskGenerator(4, min_patches=2), 1.0, ratio=(0.3, 0.5))
    torch.manual_seed(0)
    serial = batches(folder, workers=0, masks=masks, batched=batched)
    for b in serial:
        assert b["masks"].dtype == torch.bool
        assert b["masks"].shape == (b["global_crops"].shape[0], 16)  # one row per global crop
        assert (b["masks"].sum(1) > 0).all()
    torch.manual_seed(123)  # masks come from the samples' seeds, not the caller's RNG
    parallel = batches(folder, workers=2, masks=masks, batched=batched)
    resumed = batches(folder, workers=0, start_batch=2, masks=masks, batched=batched)
    for a, b in zip(serial, parallel, strict=True):
        assert same(a, b) and torch.equal(a["masks"], b["masks"])
    for a, b in zip(serial[2:], resumed, strict=True):
        assert same(a, b) and torch.equal(a["masks"], b["masks"])
    assert not torch.equal(serial[0]["masks"], serial[1]["masks"])  # batches differ
    assert "masks" not in batches(folder, workers=0)[0]  # DINO: no masks drawn at all


def test_batched_views_from_every_dataset_kind_and_the_decoded_cache(folder, tmp_path):
    # data.augment_impl=batched on a folder (with and without data.cache_decoded), a .txt list
    # and tar shards: same layout, the broken file skipped and reported, the cache changes nothing
    from tests.data.test_shards import write_shards

    plain = batches(folder, workers=0, batched=True)
    cached = batches(folder, workers=0, batched=True, cache_decoded=True)
    assert all(same(a, b) for a, b in zip(plain, cached, strict=True))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in sorted(folder.glob("*.png"))))
    shards = write_shards(tmp_path / "shards")
    for source in (listing, shards):
        got = batches(source, workers=0, batched=True)
        assert sum(len(b["skipped"]) for b in got) == 1
        for b in got:
            n = b["num_images"]
            if n == 0:  # the batch of only the broken file: nothing to train on
                assert b["global_crops"] is None and b["local_crops"] is None
                continue
            assert b["global_crops"].shape == (2 * n, 3, 16, 16)
            assert b["local_crops"].shape == (2 * n, 3, 8, 8)
            assert torch.isfinite(b["global_crops"]).all()
