"""The labelled folders of a fine-tuning run: checks, transforms, resumable loaders.

Training images get DeiT's augmentation (RandomResizedCrop, flip, RandAugment) seeded per
sample by `EpochSampler` (so the run resumes exactly, whatever the worker count); validation
images the model's evaluation transform (resize, centre crop) at the fine-tuning size.
"""

from __future__ import annotations

from torch.utils.data import DataLoader
from torchvision import transforms as T

from dinolab.data import EvalTransform, LabeledImageFolder, collate_labeled
from dinolab.data.samplers import EpochBatchSampler, EpochSampler
from dinolab.eval.features import check_same_classes, labelled_folder
from dinolab.models.preprocessing import Preprocessing


def train_transform(
    pre: Preprocessing, scale: tuple[float, float], randaug_ops: int, magnitude: int
) -> T.Compose:
    """RandomResizedCrop (bicubic) + flip + RandAugment(ops, magnitude) + normalise."""
    steps: list = [
        T.RandomResizedCrop(
            pre.image_size, scale=scale, interpolation=T.InterpolationMode.BICUBIC, antialias=True
        ),
        T.RandomHorizontalFlip(),
    ]
    if randaug_ops > 0:
        steps.append(
            T.RandAugment(randaug_ops, magnitude, interpolation=T.InterpolationMode.BILINEAR)
        )
    return T.Compose([*steps, T.ToTensor(), T.Normalize(pre.mean, pre.std)])


def eval_transform(pre: Preprocessing) -> EvalTransform:
    return EvalTransform(pre.image_size, pre.resize_ratio, pre.mean, pre.std)


def labelled_splits(
    train_dir: str, val_dir: str, train_tf, val_tf, cache_decoded: bool = False
) -> tuple[LabeledImageFolder, LabeledImageFolder]:
    """The two splits, after checking (one sentence each) that both exist, have the same
    class folders and at least two classes."""
    if not train_dir or not val_dir:
        raise ValueError("Fine-tuning needs labelled folders: pass --train DIR and --val DIR.")
    train = labelled_folder(train_dir, train_tf, cache_decoded)
    val = labelled_folder(val_dir, val_tf, cache_decoded)
    check_same_classes(train.classes, val.classes)
    if len(train.classes) < 2:
        raise ValueError(
            f"'{train_dir}' has a single class folder ({train.classes[0]!r}): a classifier "
            "needs at least two, one subfolder per class."
        )
    return train, val


def train_loader(
    dataset: LabeledImageFolder,
    batch_size: int,
    seed: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """Shuffled batches of (index, sample seed), drop_last; `loader.batch_sampler.sampler`
    is the EpochSampler (set_epoch / set_start_batch)."""
    batch_size = min(batch_size, len(dataset) // world_size)
    sampler = EpochSampler(len(dataset), batch_size, seed, rank, world_size, drop_last=True)
    return DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(sampler),
        num_workers=num_workers,
        collate_fn=collate_labeled,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def val_loader(
    dataset: LabeledImageFolder,
    batch_size: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """This process's share of the validation images, in order (every image exactly once)."""
    sampler = EpochSampler(
        len(dataset), batch_size, 0, rank, world_size, shuffle=False, drop_last=False
    )
    return DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(sampler),
        num_workers=num_workers,
        collate_fn=collate_labeled,
    )
