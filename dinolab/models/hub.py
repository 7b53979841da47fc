"""Published DINO / DINOv2 checkpoints: names, configs, URLs, position-embedding rules, loading.

`load(name_or_path, weights=None, pretrained=True)` returns an eval-mode backbone (or backbone
+ DINO head) from a hub name, a weights file (.pth / .pt / .bin / .safetensors in any layout
of `dinolab.models.convert`, or dinolab's own backbone format) or a HuggingFace model
directory. Files are read by `dinolab.models.weights` and loaded strictly. Run directories are
the root facade's (`dinolab.hub.load`), which comes here for everything else.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from dinolab.config.schema import ModelConfig
from dinolab.models import convert
from dinolab.models.adapters import is_adapter_arch
from dinolab.models.heads import DINOHead
from dinolab.models.preprocessing import Preprocessing, set_preprocessing
from dinolab.models.vision_transformer import VisionTransformer
from dinolab.models.weights import (
    backbone_from_export,
    build_inference_backbone,
    export_config,
    export_rule,
    is_export,
    load_state_dict_strict,
    pos_interpolation,
    read_weights,
)

DINO_URL = "https://dl.fbaipublicfiles.com/dino"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2"


@dataclass(frozen=True)
class HubModel:
    """One published backbone: how to build it, where its weights are, how it resamples."""

    name: str
    family: str  # "dino" (v1) | "dinov2"
    model: ModelConfig
    url: str
    full_url: str = ""  # DINO v1: full training checkpoint (student, teacher, heads)
    interpolate_offset: float = 0.0
    interpolate_antialias: bool = False


def _dino(name: str, arch: str, patch: int, file: str) -> HubModel:
    cfg = ModelConfig(arch=arch, patch_size=patch, img_size=224, drop_path_rate=0.0, ffn="mlp")
    if arch == "resnet50":
        cfg.patch_size = 32
    url = f"{DINO_URL}/{file}_pretrain/{file}_pretrain.pth"
    full = f"{DINO_URL}/{file}_pretrain/{file}_pretrain_full_checkpoint.pth"
    return HubModel(name, "dino", cfg, url, full, interpolate_offset=0.1)


def _dinov2(size: str, arch: str, registers: int) -> HubModel:
    cfg = ModelConfig(
        arch=arch,
        patch_size=14,
        img_size=518,  # 37 x 37 patches + CLS
        drop_path_rate=0.0,
        num_register_tokens=registers,
        layerscale_init=1e-5,
        ffn="swiglu" if arch == "vit_giant2" else "mlp",
        interpolate_offset=0.0 if registers else 0.1,
    )
    stem = f"dinov2_vit{size}14"
    name = stem + ("_reg" if registers else "")
    url = f"{DINOV2_URL}/{stem}/{stem}{'_reg4' if registers else ''}_pretrain.pth"
    # dinov2/hub/backbones.py: register models resample with size= and antialias, offset 0.
    rule = {"interpolate_antialias": True} if registers else {"interpolate_offset": 0.1}
    return HubModel(name, "dinov2", cfg, url, **rule)


MODELS: dict[str, HubModel] = {
    m.name: m
    for m in [
        _dino("dino_vits16", "vit_small", 16, "dino_deitsmall16"),
        _dino("dino_vits8", "vit_small", 8, "dino_deitsmall8"),
        _dino("dino_vitb16", "vit_base", 16, "dino_vitbase16"),
        _dino("dino_vitb8", "vit_base", 8, "dino_vitbase8"),
        _dino("dino_resnet50", "resnet50", 32, "dino_resnet50"),
        *(
            _dinov2(size, arch, regs)
            for size, arch in (
                ("s", "vit_small"),
                ("b", "vit_base"),
                ("l", "vit_large"),
                ("g", "vit_giant2"),
            )
            for regs in (0, 4)
        ),
    ]
}


def list_models() -> list[str]:
    return list(MODELS)


def build_model(cfg: ModelConfig, offset: float = 0.0, antialias: bool = False) -> nn.Module:
    """A random-init backbone for `cfg`; ViTs get the given position-embedding rule."""
    return build_inference_backbone(cfg, offset, antialias)


# ---------------------------------------------------------------- downloads


def cached_path(url: str) -> Path:
    """Where torch.hub keeps `url` ($TORCH_HOME/hub/checkpoints/<file name>)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def fetch(url: str) -> Path:
    """The cached file of `url`, downloading it first if needed (one clear error offline)."""
    dst = cached_path(url)
    if dst.is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dst), progress=True)
    except Exception as exc:  # URLError, timeouts, HTTP errors, no DNS
        raise FileNotFoundError(
            f"Could not download {url} ({type(exc).__name__}: no internet?): download it "
            f"yourself and put it at '{dst}', or pass its path with weights=PATH (--weights)."
        ) from None
    return dst


def _resolve(weights: str | Path | None, default_url: str) -> Path:
    loc = str(weights) if weights is not None else default_url
    if urlparse(loc).scheme in ("http", "https"):
        return fetch(loc)
    return Path(loc).expanduser()


# ---------------------------------------------------------------- loading


class BackboneWithHead(nn.Module):
    """A backbone and its DINO head: forward gives the prototype scores."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.patch_size = getattr(backbone, "patch_size", None)

    def forward_features(self, x: torch.Tensor) -> dict:
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def head_from_state_dict(sd: dict[str, torch.Tensor]) -> DINOHead:
    """A DINOHead shaped like the weights (MLP depth, hidden, bottleneck, K, BatchNorm)."""
    if "last_layer.weight_v" not in sd:
        raise ValueError(f"the head weights have no last_layer (keys: {list(sd)[:5]}).")
    out_dim, bottleneck = sd["last_layer.weight_v"].shape
    linears = sorted({int(k.split(".")[1]) for k in sd if k.startswith("mlp.") and
                      k.endswith(".weight") and sd[k].ndim == 2})  # fmt: skip
    use_bn = any(k.endswith("running_mean") for k in sd)
    if "mlp.weight" in sd:
        in_dim, hidden, nlayers = sd["mlp.weight"].shape[1], 2048, 1
    else:
        in_dim, hidden = sd["mlp.0.weight"].shape[1], sd["mlp.0.weight"].shape[0]
        nlayers = len(linears)
    return DINOHead(in_dim, out_dim, hidden, bottleneck, nlayers, use_bn=use_bn)


def load(
    name: str | Path,
    weights: str | Path | None = None,
    pretrained: bool = True,
    which: str = "teacher",
    with_head: bool = False,
) -> nn.Module:
    """An eval-mode backbone (or `BackboneWithHead` with `with_head`).

    `name` is a hub name (see `list_models()`), a weights file or a HuggingFace model
    directory (`dinolab.hub.load` also takes dinolab run directories). For hub names,
    `weights` is a local path or URL overriding the published file; `pretrained=False` gives
    random weights. `which` picks the teacher or the student of a full training checkpoint
    (DINO v1 names fetch the full checkpoint when the student or the head is asked for).
    """
    if str(name) in MODELS:
        entry = MODELS[str(name)]
        model_cfg = entry.model
        rule = (entry.interpolate_offset, entry.interpolate_antialias)
        if not pretrained and weights is None:
            if with_head:
                raise ValueError("with_head needs weights: pass pretrained=True or weights=PATH.")
            return build_model(model_cfg, *rule).eval()
        url = entry.full_url if (with_head or which == "student") and entry.full_url else entry.url
        path = _resolve(weights, url)
        return _load_file(path, which, with_head, model_cfg, rule, what=f"the {entry.name} model")
    path = Path(name).expanduser()
    if not path.exists():
        looks_like_path = path.suffix or os.sep in str(name)
        if looks_like_path:
            raise FileNotFoundError(f"No weights file or run directory at '{path}'.")
        raise ValueError(f"Unknown model '{name}': use one of {', '.join(MODELS)}.")
    if path.is_dir():
        return _load_dir(path)
    return _load_file(path, which, with_head, None, None, what=f"the model of '{path}'")


def _load_dir(path: Path) -> nn.Module:
    if (path / "config.json").is_file():
        sd, _ = read_weights(path / "model.safetensors")
        model = _load_file_state(sd, {}, "teacher", False, None, None, f"the model of '{path}'")
        processor = path / "preprocessor_config.json"
        if processor.is_file():
            config = json.loads(processor.read_text())
            set_preprocessing(model, Preprocessing.from_hf_processor_config(config))
        return model
    raise FileNotFoundError(
        f"'{path}' is neither a dinolab run directory (config.yaml) nor a HuggingFace model "
        "directory (config.json + model.safetensors)."
    )


def _load_file(path, which, with_head, model_cfg, rule, what) -> nn.Module:
    obj, meta = read_weights(path)
    try:
        model = _load_file_state(obj, meta, which, with_head, model_cfg, rule, what)
    except ValueError as exc:
        raise ValueError(f"'{path}': {exc}") from None
    return set_preprocessing(model, Preprocessing.from_metadata(meta))


def _load_file_state(obj, meta, which, with_head, model_cfg, rule, what) -> nn.Module:
    if is_export(meta):  # our own format: config and rule in the metadata
        if model_cfg is None and not with_head:  # the run's loader's path (`load_run_backbone`)
            return backbone_from_export(obj, meta, what)
        model_cfg = model_cfg or export_config(meta)
        rule = rule or export_rule(meta)
        if is_adapter_arch(model_cfg.arch) and not with_head:  # timm / torchvision: keys as saved
            backbone = build_model(model_cfg)
            load_state_dict_strict(backbone, obj, what)
            return backbone.eval()
    backbone_sd, head_sd = convert.split_training_checkpoint(obj, which)
    if convert.is_resnet(backbone_sd):
        backbone_sd = convert.normalize_resnet(backbone_sd)
    else:
        backbone_sd = convert.normalize_vit(backbone_sd)
    if model_cfg is None:
        model_cfg = convert.infer_model_config(backbone_sd)
    if rule is None:  # raw file: DINOv2-like (LayerScale) or v1 rule by its look
        regs = model_cfg.num_register_tokens
        rule = (0.0, True) if regs else (0.1, False)
    if convert.is_resnet(backbone_sd) != (model_cfg.arch == "resnet50"):
        kind = "ResNet" if convert.is_resnet(backbone_sd) else "ViT"
        raise ValueError(f"the checkpoint holds a {kind}, which does not fit {what}.")
    backbone = build_model(model_cfg, *rule)
    load_state_dict_strict(backbone, backbone_sd, what)
    backbone.eval()
    if not with_head:
        return backbone
    if not head_sd:
        raise ValueError(
            "the checkpoint has no DINO head (only a backbone): use a full training checkpoint."
        )
    head = head_from_state_dict(head_sd)
    load_state_dict_strict(head, head_sd, "the DINO head")
    return BackboneWithHead(backbone, head).eval()


def describe(model: nn.Module) -> dict[str, Any]:
    """A short summary of a loaded model (for `dinolab hub load`)."""
    backbone = getattr(model, "backbone", model)
    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "class": type(backbone).__name__,
        "parameters": n_params,
        "embed_dim": getattr(backbone, "embed_dim", None),
        "patch_size": getattr(backbone, "patch_size", None),
    }
    if isinstance(backbone, VisionTransformer):
        side = math.isqrt(backbone.pos_embed.shape[1] - 1)
        info.update(
            depth=backbone.n_blocks,
            num_heads=backbone.num_heads,
            num_register_tokens=backbone.num_register_tokens,
            pos_embed_grid=f"{side}x{side}",
            pos_interpolation=pos_interpolation(backbone),
        )
    if isinstance(model, BackboneWithHead):
        info["head_out_dim"] = model.head.last_layer.out_features
    return info
