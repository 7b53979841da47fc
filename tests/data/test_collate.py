from __future__ import annotations

import torch

from dinolab.data.collate import collate_labeled, collate_multicrop
from dinolab.data.masking import BlockMaskGenerator, IBOTBatchMasks


def crops(image: int, n_local: int) -> dict[str, list[torch.Tensor]]:
    """Crops whose every pixel is 10 * image + view, so ordering can be read back."""
    return {
        "global_crops": [torch.full((3, 8, 8), 10.0 * image + v) for v in range(2)],
        "local_crops": [torch.full((3, 4, 4), 10.0 * image + 2 + v) for v in range(n_local)],
    }


def sample(index: int, n_local: int = 3) -> dict:
    image = crops(index, n_local)
    return {"image": image, "label": -1, "index": index, "path": f"{index}.jpg", "seed": 7 + index}


def error(index: int) -> dict:
    return {"error": f"{index}.jpg: empty file (0 bytes)", "index": index}


def test_multicrop_is_view_major_and_drops_errors():
    batch = collate_multicrop([sample(0), error(1), sample(2), sample(3)])
    assert batch["num_images"] == 3
    assert batch["skipped"] == ["1.jpg: empty file (0 bytes)"]
    assert batch["indices"].tolist() == [0, 2, 3]
    g, loc = batch["global_crops"], batch["local_crops"]
    assert g.shape == (6, 3, 8, 8) and loc.shape == (9, 3, 4, 4)
    assert g[:, 0, 0, 0].tolist() == [0, 20, 30, 1, 21, 31]
    assert loc[:, 0, 0, 0].tolist() == [2, 22, 32, 3, 23, 33, 4, 24, 34]
    view0, view1 = g.chunk(2)
    assert torch.equal(view1, g[3:])
    assert (view0[:, 0, 0, 0] % 10 == 0).all()


def test_multicrop_without_local_crops():
    batch = collate_multicrop([sample(0, 0), sample(1, 0)])
    assert batch["local_crops"] is None and batch["global_crops"].shape == (4, 3, 8, 8)


def test_all_failed_batch_has_zero_images():
    batch = collate_multicrop([error(0), error(5)])
    assert batch["num_images"] == 0 and batch["global_crops"] is None
    assert len(batch["skipped"]) == 2 and batch["indices"].numel() == 0
    labeled = collate_labeled([error(2)])
    assert labeled["num_images"] == 0 and labeled["images"] is None
    assert labeled["labels"].shape == (0,)


def test_labeled_collate():
    samples = [
        {"image": torch.full((3, 5, 5), float(i)), "label": i % 2, "index": i, "path": "x"}
        for i in range(4)
    ]
    batch = collate_labeled(samples[:2] + [error(9)] + samples[2:])
    assert batch["images"].shape == (4, 3, 5, 5)
    assert batch["images"][:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1, 0, 1]
    assert batch["indices"].tolist() == [0, 1, 2, 3]
    assert batch["skipped"] == ["9.jpg: empty file (0 bytes)"] and batch["num_images"] == 4


def test_multicrop_draws_ibot_masks_from_the_sample_seeds():
    masks = IBOTBatchMasks(BlockMaskGenerator(4, min_patches=2), probability=0.5)
    batch = collate_multicrop([sample(0), error(1), sample(2), sample(3)], masks=masks)
    m = batch["masks"]
    assert m.shape == (6, 16) and m.dtype == torch.bool  # one row per global crop
    assert int((m.sum(1) > 0).sum()) == 3  # DINOv2's rule: int(6 * 0.5) crops masked
    again = collate_multicrop([sample(0), sample(2), sample(3)], masks=masks)
    assert torch.equal(again["masks"], m)  # same samples (seeds), same masks
    other = [sample(i) for i in (4, 5, 6)]
    assert not torch.equal(collate_multicrop(other, masks=masks)["masks"], m)
    assert collate_multicrop([error(0)], masks=masks)["masks"] is None
