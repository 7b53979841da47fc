"""What a backbone's inputs must look like, carried with its weights wherever they go.

A run trained on CIFAR statistics at 32 px gives wrong features when it is fed ImageNet-normalised
224 px images. So every file dinolab writes records the normalisation and the image size
(`Preprocessing`, JSON under the metadata key "preprocessing"), every loader attaches them to
the backbone it returns (`backbone.preprocessing`), and feature extraction reads them back with
`preprocessing_of(model)`: published DINO / DINOv2 models and foreign files get ImageNet
statistics at 224 px, which is what they were trained with.

    from dinolab.models.preprocessing import preprocessing_of
    preprocessing_of(dinolab.load("runs/x"))  # Preprocessing(mean=(0.49, ...), image_size=32, ...)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from dinolab.config.schema import Config
from dinolab.data.augment import IMAGENET_MEAN, IMAGENET_RESIZE_RATIO, IMAGENET_STD

METADATA_KEY = "preprocessing"
__all__ = ["METADATA_KEY", "Preprocessing", "preprocessing_of", "set_preprocessing"]


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to image_size * resize_ratio (bicubic), centre-crop image_size,
    scale to [0, 1], normalise with mean / std (DINO's evaluation transform)."""

    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    image_size: int = 224
    resize_ratio: float = IMAGENET_RESIZE_RATIO

    @classmethod
    def from_config(cls, cfg: Config) -> Preprocessing:
        """A run's: its data.mean / data.std at its evaluation size and view."""
        size = cfg.eval.image_size or cfg.data.global_size
        mean, std = tuple(map(float, cfg.data.mean)), tuple(map(float, cfg.data.std))
        return cls(mean, std, int(size), float(cfg.eval.resize_ratio))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> Preprocessing | None:
        """The record in a file's metadata; None for files written before it was recorded."""
        if METADATA_KEY not in meta:
            return None
        raw = json.loads(meta[METADATA_KEY])
        return cls(
            tuple(raw["mean"]), tuple(raw["std"]), int(raw["image_size"]), raw["resize_ratio"]
        )

    def hf_processor_config(self) -> dict[str, Any]:
        """`preprocessor_config.json` of a HuggingFace export (DINOv2's BitImageProcessor)."""
        return {
            "image_processor_type": "BitImageProcessor",
            "do_convert_rgb": True,
            "do_resize": True,
            "size": {"shortest_edge": round(self.image_size * self.resize_ratio)},
            "resample": 3,  # PIL bicubic
            "do_center_crop": True,
            "crop_size": {"height": self.image_size, "width": self.image_size},
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
        }

    @classmethod
    def from_hf_processor_config(cls, config: dict[str, Any]) -> Preprocessing:
        crop = config.get("crop_size", {}).get("height", 224)
        shortest = config.get("size", {}).get("shortest_edge", round(crop * IMAGENET_RESIZE_RATIO))
        return cls(
            tuple(config.get("image_mean", IMAGENET_MEAN)),
            tuple(config.get("image_std", IMAGENET_STD)),
            int(crop),
            shortest / crop,
        )


def preprocessing_of(model: nn.Module) -> Preprocessing:
    """The preprocessing a loaded model carries; ImageNet statistics at 224 px when it has none."""
    backbone = getattr(model, "backbone", model)
    return getattr(backbone, "preprocessing", None) or Preprocessing()


def set_preprocessing(model: nn.Module, preprocessing: Preprocessing | None) -> nn.Module:
    """Attach `preprocessing` to the backbone of `model` (None: leave it as it is)."""
    if preprocessing is not None:
        getattr(model, "backbone", model).preprocessing = preprocessing
    return model
