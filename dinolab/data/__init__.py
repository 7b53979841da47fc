"""Data for pretraining and evaluation: datasets, multi-crop augmentation, sampler, collate."""

from dinolab.data.augment import EvalTransform, MultiCropAugmentation, RandomGaussianBlur
from dinolab.data.build import build_dataset
from dinolab.data.collate import collate_labeled, collate_multicrop
from dinolab.data.datasets import (
    IMAGE_EXTENSIONS,
    ImageDataset,
    ImageFileList,
    LabeledImageFolder,
    UnlabeledImageFolder,
    apply_seeded,
    decode_image,
    find_images,
    to_rgb,
)
from dinolab.data.masking import BlockMaskGenerator, IBOTBatchMasks
from dinolab.data.samplers import EpochSampler, sample_seeds

__all__ = [
    "IMAGE_EXTENSIONS",
    "BlockMaskGenerator",
    "EpochSampler",
    "EvalTransform",
    "IBOTBatchMasks",
    "ImageDataset",
    "ImageFileList",
    "LabeledImageFolder",
    "MultiCropAugmentation",
    "RandomGaussianBlur",
    "UnlabeledImageFolder",
    "apply_seeded",
    "build_dataset",
    "collate_labeled",
    "collate_multicrop",
    "decode_image",
    "find_images",
    "sample_seeds",
    "to_rgb",
]
