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
    BlockMaskGenerator,
    EpochSampler,
    IBOTBatchMasks,
    MultiCropAugmentation,
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
    folder: Path, workers: int, start_batch: int = 0, masks: IBOTBatchMasks | None = None
) -> list[dict]:
    ds = build_dataset(str(folder), transform=MultiCropAugmentation(16, 8, 2))
    sampler = EpochSampler(len(ds), batch_size=3, seed=11, drop_last=False)
    sampler.set_epoch(1)
    sampler.set_start_batch(start_batch)
    collate = functools.partial(collate_multicrop, masks=masks)
    loader = DataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers, collate_fn=collate)
    return list(loader)


def same(a: dict, b: dict) -> bool:
    return (
        torch.equal(a["indices"], b["indices"])
        and torch.equal(a["global_crops"], b["global_crops"])
        and torch.equal(a["local_crops"], b["local_crops"])
        and a["skipped"] == b["skipped"]
    )


def test_workers_and_resume_give_identical_batches(folder):
    torch.manual_seed(0)
    serial = batches(folder, workers=0)
    skipped = [e for b in serial for e in b["skipped"]]
    # drop_last=False: every image exactly once (3 + 3 + 3 + 1), the broken one reported
    assert len(serial) == 4 and sum(b["num_images"] for b in serial) + len(skipped) == 10
    assert skipped and all(e.endswith("03.png: empty file (0 bytes)") for e in skipped)
    torch.manual_seed(123)  # the caller's RNG does not matter either
    parallel = batches(folder, workers=2)
    assert all(same(a, b) for a, b in zip(serial, parallel, strict=True))
    resumed = batches(folder, workers=0, start_batch=2)
    assert all(same(a, b) for a, b in zip(serial[2:], resumed, strict=True))


def test_ibot_masks_ride_in_the_batch_and_survive_workers_and_resume(folder):
    # 16 px global crops of 4 px patches: 4 x 4 grids, every global crop masked
    masks = IBOTBatchMasks(BlockMaskGenerator(4, min_patches=2), 1.0, ratio=(0.3, 0.5))
    torch.manual_seed(0)
    serial = batches(folder, workers=0, masks=masks)
    for b in serial:
        assert b["masks"].dtype == torch.bool
        assert b["masks"].shape == (b["global_crops"].shape[0], 16)  # one row per global crop
        assert (b["masks"].sum(1) > 0).all()
    torch.manual_seed(123)  # masks come from the samples' seeds, not the caller's RNG
    parallel = batches(folder, workers=2, masks=masks)
    resumed = batches(folder, workers=0, start_batch=2, masks=masks)
    for a, b in zip(serial, parallel, strict=True):
        assert same(a, b) and torch.equal(a["masks"], b["masks"])
    for a, b in zip(serial[2:], resumed, strict=True):
        assert same(a, b) and torch.equal(a["masks"], b["masks"])
    assert not torch.equal(serial[0]["masks"], serial[1]["masks"])  # batches differ
    assert "masks" not in batches(folder, workers=0)[0]  # DINO: no masks drawn at all
