"""Data for pretraining and evaluation: datasets, multi-crop augmentation, sampler, collate."""

from dinolab.data.augment import EvalTransform, MultiCropAugmentation, RandomGaussianBlur
from dinolab.data.augment_batched import BatchedMultiCrop, ToUint8Tensor, multicrop_pipeline
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
    "BatchedMultiCrop",
    "BlockMaskGenerator",
    "EpochSampler",
    "EvalTransform",
    "IBOTBatchMasks",
    "ImageDataset",
    "ImageFileList",
    "LabeledImageFolder",
    "MultiCropAugmentation",
    "RandomGaussianBlur",
    "ToUint8Tensor",
    "UnlabeledImageFolder",
    "apply_seeded",
    "build_dataset",
    "collate_labeled",
    "collate_multicrop",
    "decode_image",
    "find_images",
    "multicrop_pipeline",
    "sample_seeds",
    "to_rgb",
]
