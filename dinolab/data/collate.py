"""Batch samples from `datasets`: drop the ones that failed to decode and say which.

Multi-crop views are stacked view-major (all images' view 0, then all images' view 1, ...),
so `global_crops.chunk(2)` gives the two global views and the loss can pair views by chunk.
DINOv2's iBOT masks are drawn here too (`masking.IBOTBatchMasks`, from the samples' seeds).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from dinolab.data.masking import IBOTBatchMasks


def _view_major(good: list[dict[str, Any]], key: str) -> torch.Tensor | None:
    views = [s["image"][key] for s in good]
    if not views[0]:
        return None
    return torch.stack([crops[v] for v in range(len(views[0])) for crops in views])


class BatchAugment(Protocol):
    """Cuts a batch's views from its decoded images (`augment_batched.BatchedMultiCrop`)."""

    def __call__(
        self, images: list[torch.Tensor], seeds: list[int | None]
    ) -> dict[str, torch.Tensor | None]: ...


def collate_multicrop(
    samples: list[dict[str, Any]],
    masks: IBOTBatchMasks | None = None,
    augment: BatchAugment | None = None,
) -> dict[str, Any]:
    """Samples of `MultiCropAugmentation` output -> view-major crop tensors; with `augment`
    (data.augment_impl=batched) the samples hold uint8 images and `augment` cuts the views.

    Returns {"global_crops": Tensor[2B,3,G,G], "local_crops": Tensor[N*B,3,L,L] or None,
    "num_images": B, "indices": LongTensor[B], "skipped": [error strings]}, and with `masks`
    (bind it with functools.partial) "masks": BoolTensor[2B, patches] for the global crops in
    the same order; a batch in which every sample failed has num_images == 0 and None crops
    and masks (the trainer skips it).
    """
    good = [s for s in samples if "error" not in s]
    skipped = [s["error"] for s in samples if "error" in s]
    indices = torch.tensor([s["index"] for s in good], dtype=torch.long)
    seeds = [s.get("seed") for s in good]
    if not good:
        views: dict[str, Any] = {"global_crops": None, "local_crops": None}
    elif augment is not None:
        views = augment([s["image"] for s in good], seeds)
    else:
        views = {k: _view_major(good, k) for k in ("global_crops", "local_crops")}
    batch: dict[str, Any] = {
        **views,
        "num_images": len(good),
        "indices": indices,
        "skipped": skipped,
    }
    if masks is not None:
        batch["masks"] = masks(batch["global_crops"].shape[0], seeds) if good else None
    return batch


def collate_labeled(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples with one tensor image each -> {"images", "labels", "indices", "num_images",
    "skipped"}; images is None when every sample failed."""
    good = [s for s in samples if "error" not in s]
    skipped = [s["error"] for s in samples if "error" in s]
    return {
        "images": torch.stack([s["image"] for s in good]) if good else None,
        "labels": torch.tensor([s["label"] for s in good], dtype=torch.long),
        "indices": torch.tensor([s["index"] for s in good], dtype=torch.long),
        "num_images": len(good),
        "skipped": skipped,
    }
