"""The shared feature pass: frozen-backbone features of a labelled folder, batched and cached.

One pass stores the ingredients every protocol needs, as one flat row per image:
the CLS tokens of the last `n_last_blocks` blocks (oldest first), then, with `avgpool`, the
average of the last block's patch tokens. A probe variant (n <= n_last_blocks, with or without
avgpool) is then a slice of that row (`select_variant`), so a grid of probes needs one pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from dinolab.data import EvalTransform, LabeledImageFolder, collate_labeled
from dinolab.data.augment import IMAGENET_MEAN, IMAGENET_RESIZE_RATIO, IMAGENET_STD
from dinolab.eval.cache import FeatureWriter, backbone_fingerprint, cache_key, files_fingerprint
from dinolab.eval.cache import load_entry as load_cached
from dinolab.hardware import autocast, resolve_precision

log = logging.getLogger("dinolab")


def backbone_tokens(
    backbone: nn.Module, images: Tensor, n_last_blocks: int = 1, avgpool: bool = False
) -> Tensor:
    """[B, (n_last_blocks + avgpool) * D] float32 rows in the layout described above."""
    if n_last_blocks > 1:
        if not hasattr(backbone, "get_intermediate_layers"):
            raise ValueError(
                f"{type(backbone).__name__} has no get_intermediate_layers: use n_last_blocks=1."
            )
        outs = backbone.get_intermediate_layers(images, n_last_blocks, return_class_token=True)
        parts = [cls for _, cls in outs]
        patches = outs[-1][0]
    elif hasattr(backbone, "forward_features"):
        out = backbone.forward_features(images)
        parts, patches = [out["x_norm_clstoken"]], out["x_norm_patchtokens"]
    else:  # any module mapping images to embeddings
        parts, patches = [backbone(images)], None
    if avgpool:
        if patches is None:
            raise ValueError(f"{type(backbone).__name__} gives no patch tokens to average-pool.")
        parts.append(patches.mean(dim=1))
    return torch.cat([p.float() for p in parts], dim=1)


def select_variant(
    features: Tensor, stored: tuple[int, bool], n_blocks: int, avgpool: bool
) -> Tensor:
    """The probe input of one variant, sliced from rows stored as (n_last_blocks, avgpool)."""
    n_stored, pooled = stored
    if n_blocks > n_stored or (avgpool and not pooled):
        raise ValueError(
            f"variant (n_blocks={n_blocks}, avgpool={avgpool}) needs features extracted with "
            f"n_last_blocks >= {n_blocks}{' and avgpool' if avgpool else ''}."
        )
    dim = features.shape[1] // (n_stored + int(pooled))
    parts = [features[:, (n_stored - n_blocks) * dim : n_stored * dim]]
    if avgpool:
        parts.append(features[:, n_stored * dim : (n_stored + 1) * dim])
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def labelled_folder(
    root: str | Path, transform=None, cache_decoded: bool = False
) -> LabeledImageFolder:
    """A class-subfolder dataset; a missing or class-less folder is a one-line error."""
    ds = LabeledImageFolder(root, transform=transform, cache_decoded=cache_decoded)
    if not ds.classes:
        raise ValueError(f"'{root}' has no class subfolders: put each class's images in one.")
    return ds


def check_same_classes(train_classes: list[str], val_classes: list[str]) -> None:
    """k-NN and linear probes need the validation classes to be the training classes."""
    if list(train_classes) != list(val_classes):
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise ValueError(
            "Validation classes differ from training classes "
            f"(only in train: {only_train[:5]}, only in val: {only_val[:5]}): use the same "
            "class subfolders in both."
        )


def same_class_folders(train_root: str | Path, *other_roots: str | Path | None) -> list[str]:
    """The training classes, after checking (cheaply, before any feature pass) that every
    other split has exactly the same class folders."""
    classes = labelled_folder(train_root).classes
    for root in other_roots:
        if root:
            check_same_classes(classes, labelled_folder(root).classes)
    return classes


def check_every_class(root: str, classes: list[str], labels: Tensor) -> None:
    counts = torch.bincount(labels, minlength=len(classes))
    empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
    if empty:
        raise ValueError(
            f"Class folder(s) {empty[:5]} under '{root}' have no readable image: add images "
            "or remove the folder."
        )


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    root: str | Path,
    image_size: int,
    batch_size: int = 128,
    num_workers: int = 2,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    progress: bool = True,
    n_last_blocks: int = 1,
    avgpool: bool = False,
    cache_dir: str | Path | None = None,
    indices: Sequence[int] | None = None,
    resize_ratio: float = IMAGENET_RESIZE_RATIO,
) -> dict:
    """Raw float32 features (see the layout above) and labels of every readable image.

    With `cache_dir`, rows are written to a memmap there and reused when the backbone weights,
    the files (names, mtimes, sizes), the transform, the precision and the variant all match;
    the returned tensor is then backed by the file. `indices` restricts to a subset. Images
    are seen as `EvalTransform(image_size, resize_ratio)` shows them (1.0: the whole frame).
    """
    device = torch.device(device)
    precision, _ = resolve_precision(precision, device)  # the cache key holds the resolved one
    transform = EvalTransform(image_size, resize_ratio, mean=mean, std=std)
    dataset = labelled_folder(root, transform)
    classes = list(dataset.classes)
    subset = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    layout = {"n_last_blocks": n_last_blocks, "avgpool": avgpool}
    key = ""
    if cache_dir is not None:
        key = cache_key(
            {
                "backbone": backbone_fingerprint(backbone),
                "files": files_fingerprint(
                    [dataset.paths[i] for i in subset], [dataset.targets[i] for i in subset]
                ),
                "classes": classes,
                "transform": [image_size, list(mean), list(std), resize_ratio],
                "precision": precision,
                **layout,
            }
        )
        entry = load_cached(cache_dir, key)
        if entry is not None:
            log.info("features of %s from cache %s", root, Path(cache_dir) / key)
            meta = entry["meta"]
            check_every_class(str(root), classes, entry["labels"])
            return {
                **entry,
                "classes": classes,
                "skipped": meta["skipped"],
                **layout,
                "cached": True,
            }
    loader = DataLoader(
        Subset(dataset, subset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_labeled,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # leave the global RNG (a training run's) untouched
    )
    writer = FeatureWriter(len(subset), cache_dir, key)
    was_training = backbone.training
    backbone.to(device).eval()
    skipped: list[str] = []
    try:
        for batch in tqdm(loader, desc=f"features {root}", unit="batch", disable=not progress):
            skipped.extend(batch["skipped"])
            if batch["num_images"] == 0:
                continue
            images = batch["images"].to(device, non_blocking=True)
            with autocast(device, precision):
                feats = backbone_tokens(backbone, images, n_last_blocks, avgpool)
            writer.append(feats.cpu(), batch["labels"])
        for err in skipped:
            log.warning("skipped unreadable image %s", err)
        if writer.count == 0:  # checked before finish(): an empty writer has no rows to publish
            raise ValueError(f"No readable images under '{root}'.")
        entry = writer.finish({"root": str(root), "skipped": skipped, **layout})
    except BaseException:
        writer.abort()
        raise
    finally:
        backbone.train(was_training)
    check_every_class(str(root), classes, entry["labels"])
    return {**entry, "classes": classes, "skipped": skipped, **layout, "cached": False}
