"""The fine-tuned model: a backbone and a linear head on its CLS token (or CLS + mean patch
token; a convolutional backbone's pooled feature map plays the CLS token), and its file.

`classifier.safetensors` holds the tensors (`backbone.*`, `head.*`) and, as metadata, what
rebuilds it without the model it started from: the backbone's ModelConfig and position-
embedding rule (`dinolab.models.weights`' format), its preprocessing (normalisation, image
size), the class names in label order and the pooling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import Tensor, nn

from dinolab.config.schema import ModelConfig
from dinolab.eval.features import backbone_tokens
from dinolab.models.layers.drop_path import DropPath
from dinolab.models.preprocessing import METADATA_KEY, Preprocessing, preprocessing_of
from dinolab.models.weights import (
    build_inference_backbone,
    export_config,
    export_rule,
    is_export,
    load_state_dict_strict,
    pos_interpolation,
    read_weights,
    save_safetensors,
)

FORMAT = "dinolab-classifier-v1"


class Classifier(nn.Module):
    """backbone -> CLS (+ mean patch token) -> linear head -> logits [B, num_classes]."""

    def __init__(self, backbone: nn.Module, num_classes: int, pool: str = "cls") -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        dim = backbone.embed_dim * (2 if pool == "cls+mean" else 1)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # MAE / BEiT: start near zero
        nn.init.zeros_(self.head.bias)

    def features(self, images: Tensor) -> Tensor:
        """The head's input, the same row a frozen linear probe reads (`backbone_tokens`)."""
        return backbone_tokens(self.backbone, images, 1, self.pool == "cls+mean")

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))


def set_drop_path(backbone: nn.Module, rate: float) -> None:
    """Stochastic depth ramped 0 -> `rate` over a ViT's blocks (DeiT); other backbones have
    no residual branches to drop and are left as they are."""
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not hasattr(blocks[0], "drop_path1"):
        return
    for i, block in enumerate(blocks):
        r = rate * i / max(len(blocks) - 1, 1)
        block.drop_path1 = DropPath(r) if r > 0 else nn.Identity()
        block.drop_path2 = DropPath(r) if r > 0 else nn.Identity()


@dataclass
class ClassifierSpec:
    """Everything but the tensors: enough to rebuild the Classifier anywhere."""

    model: dict  # the backbone's ModelConfig as a dict
    pos_rule: dict  # {"offset": float, "antialias": bool}
    preprocessing: dict  # Preprocessing as a dict (its image_size: the fine-tuning size)
    classes: list[str]
    pool: str = "cls"

    def build(self) -> Classifier:
        """A Classifier of this shape (random weights, no stochastic depth)."""
        cfg = ModelConfig(**self.model)
        backbone = build_inference_backbone(
            cfg, float(self.pos_rule["offset"]), bool(self.pos_rule["antialias"])
        )
        backbone.preprocessing = self.input_preprocessing()
        return Classifier(backbone, len(self.classes), self.pool)

    def input_preprocessing(self) -> Preprocessing:
        """How images must be prepared for this classifier (normalisation, size)."""
        pre = self.preprocessing
        return Preprocessing(
            tuple(pre["mean"]), tuple(pre["std"]), int(pre["image_size"]), pre["resize_ratio"]
        )


def model_config_of_source(backbone: nn.Module, source: str | Path) -> ModelConfig:
    """The ModelConfig of the backbone MODEL named: a run's `model` group, the record of a
    dinolab export, else what the weights say (ViTs and ResNet-50: `exporters.safetensors`)."""
    from dinolab.config.loader import load_saved_config
    from dinolab.exporters.safetensors import model_config_of

    path = Path(source).expanduser()
    run = path if path.is_dir() else path.parent
    if path.exists() and (run / "config.yaml").is_file():
        return load_saved_config(run / "config.yaml").model
    if path.is_file() and path.suffix == ".safetensors":
        _, meta = read_weights(path)
        if is_export(meta):
            return export_config(meta)
    try:
        return model_config_of(backbone)
    except Exception as exc:  # noqa: BLE001 - any failure means: the weights do not say
        raise ValueError(
            f"Cannot tell the architecture of '{source}' from its weights ({exc}): pass its "
            "dinolab run directory or teacher_backbone.safetensors instead."
        ) from None


def spec_for(
    backbone: nn.Module, model_cfg: ModelConfig, classes: list[str], pool: str, image_size: int
) -> ClassifierSpec:
    """The spec of a classifier on `backbone` fine-tuned at `image_size` for `classes`."""
    pre = preprocessing_of(backbone)
    pre = Preprocessing(pre.mean, pre.std, image_size, pre.resize_ratio)
    return ClassifierSpec(
        asdict(model_cfg), pos_interpolation(backbone), asdict(pre), list(classes), pool
    )


def save_classifier(model: Classifier, spec: ClassifierSpec, path: str | Path) -> Path:
    """Write the classifier file atomically (see the module docstring)."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "model": json.dumps(spec.model),
        "pos_interpolation": json.dumps(spec.pos_rule),
        METADATA_KEY: json.dumps(spec.preprocessing),
        "classes": json.dumps(spec.classes),
        "pool": spec.pool,
    }
    tmp = path.with_name(path.name + ".tmp")
    save_safetensors(tensors, tmp, metadata)
    tmp.replace(path)
    return path


def load_classifier(path: str | Path) -> tuple[Classifier, ClassifierSpec]:
    """The eval-mode Classifier of a file `save_classifier` wrote (strict) and its spec."""
    state, meta = read_weights(path, what="classifier file")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"'{path}' is not a dinolab classifier (no '{FORMAT}' metadata): pass a "
            "`dinolab finetune` run directory or its classifier.safetensors."
        )
    offset, antialias = export_rule(meta)
    spec = ClassifierSpec(
        json.loads(meta["model"]),
        {"offset": offset, "antialias": antialias},
        json.loads(meta[METADATA_KEY]),
        json.loads(meta["classes"]),
        meta.get("pool", "cls"),
    )
    model = spec.build()
    load_state_dict_strict(model, state, f"classifier '{path}'")
    return model.eval(), spec
