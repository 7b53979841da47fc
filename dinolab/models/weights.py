"""Weights on disk: reading any checkpoint file, dinolab's backbone format, strict loading.

- `read_weights(path)`: (contents, metadata) of a `.safetensors` file or of a PyTorch file read
  with `torch.load(weights_only=True)`: loading a file never runs code from it, and every
  unreadable file is one sentence naming it.
- The dinolab backbone format (`FORMAT`): a safetensors file with the backbone's tensors, its
  `ModelConfig` (JSON, metadata `model`), its position-embedding rule (`pos_interpolation`)
  and its input normalisation and size (`preprocessing`, `dinolab.models.preprocessing`).
  `save_backbone` writes it, `load_backbone` / `backbone_from_export` rebuild the backbone.
- `load_state_dict_strict`: every key or none, with an error naming the keys.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from dinolab.config.schema import Config, ModelConfig
from dinolab.models.build import build_backbone
from dinolab.models.preprocessing import (
    METADATA_KEY,
    Preprocessing,
    preprocessing_of,
    set_preprocessing,
)

FORMAT = "dinolab-backbone-v1"
# The rule the trainer's backbones used before `model.interpolate_offset` (bicubic, size=, no
# antialias): the default of files written before the rule was recorded in their metadata.
TRAINING_RULE = {"offset": 0.0, "antialias": False}


# ---------------------------------------------------------------- reading any file


def read_weights(
    path: str | Path,
    what: str = "weights file",
    kind: str = "PyTorch checkpoint",
    missing_hint: str = "check the path.",
    map_location: Any = "cpu",
) -> tuple[dict[str, Any], dict[str, str]]:
    """(contents, safetensors metadata) of a weights file; never runs code from the file.

    `what` names the file when it is missing ("No {what} at ..."), `kind` when it cannot be
    read ("... is not a readable {kind}").
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at '{path}': {missing_hint}")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"'{path}' is not a readable safetensors file ({exc}).") from None
        return tensors, meta
    try:
        # DINO v1 full checkpoints store their argparse.Namespace: plain data, allow it.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, text file, disallowed globals
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"'{path}' is not a readable {kind} ({reason}): it may be truncated by an "
            "interrupted download or copy, or not be a checkpoint at all."
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"'{path}' is not a readable {kind} (it holds a {type(obj).__name__}, not a dict)."
        )
    return obj, {}


# ---------------------------------------------------------------- the dinolab format


def pos_interpolation(model: nn.Module) -> dict[str, Any]:
    """The resampling rule of a backbone: {"offset": float, "antialias": bool}."""
    return {
        "offset": float(getattr(model, "interpolate_offset", 0.0)),
        "antialias": bool(getattr(model, "interpolate_antialias", False)),
    }


def save_backbone(
    backbone: nn.Module,
    cfg: Config | ModelConfig,
    path: str | Path,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write `backbone`'s weights, its ModelConfig, its position-embedding rule and its input
    preprocessing (JSON metadata) atomically. The preprocessing is the run's with a Config,
    else what the backbone carries (`dinolab.models.preprocessing`)."""
    path = Path(path)
    model_cfg = cfg.model if isinstance(cfg, Config) else cfg
    if isinstance(cfg, Config):
        preprocessing = Preprocessing.from_config(cfg)
    else:
        preprocessing = preprocessing_of(backbone)
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "model": json.dumps(asdict(model_cfg)),
        "pos_interpolation": json.dumps(pos_interpolation(backbone)),
        METADATA_KEY: preprocessing.to_json(),
        **(extra_metadata or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_safetensors(tensors, tmp, metadata)
    tmp.replace(path)
    return path


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """`safetensors.torch.save_file`, leaving the file with the permissions any new file gets
    (0666 less the umask: 0644 mostly). The library creates its files 0600, which a group that
    shares a runs folder, or a web server that serves the weights, cannot read."""
    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, 0o666 & ~_umask())
    return Path(path)


def _umask() -> int:
    """This process's umask, read without changing it where Linux shows it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def is_export(meta: dict[str, str]) -> bool:
    """Whether safetensors metadata is that of a `save_backbone` file."""
    return meta.get("format") == FORMAT


def export_config(meta: dict[str, str]) -> ModelConfig:
    """The ModelConfig recorded by `save_backbone`, its offset the recorded rule's (files
    written before `model.interpolate_offset` existed do not hold it)."""
    return replace(
        ModelConfig(**json.loads(meta["model"])), interpolate_offset=export_rule(meta)[0]
    )


def export_rule(meta: dict[str, str]) -> tuple[float, bool]:
    """(offset, antialias) recorded by `save_backbone`; the training rule for older files."""
    rule = json.loads(meta["pos_interpolation"]) if "pos_interpolation" in meta else TRAINING_RULE
    return float(rule["offset"]), bool(rule["antialias"])


def build_inference_backbone(
    cfg: ModelConfig, offset: float | None = None, antialias: bool = False
) -> nn.Module:
    """A random-init backbone for `cfg` without stochastic depth; ViTs get the given rule
    (offset None: the run's, `cfg.interpolate_offset`)."""
    return build_backbone(
        replace(cfg, drop_path_rate=0.0),
        interpolate_offset=offset,
        interpolate_antialias=antialias,
    )


def backbone_from_export(
    state: dict[str, Any], meta: dict[str, str], what: str | None = None
) -> nn.Module:
    """The eval-mode backbone of a `save_backbone` file's tensors and metadata (strict)."""
    model_cfg = export_config(meta)
    backbone = build_inference_backbone(model_cfg, *export_rule(meta))
    load_state_dict_strict(backbone, state, what or f"the {model_cfg.arch} backbone")
    return set_preprocessing(backbone.eval(), Preprocessing.from_metadata(meta))


def load_backbone(path: str | Path) -> nn.Module:
    """Rebuild a backbone written by `save_backbone` (strict: every key must match)."""
    state, meta = read_weights(path, what="backbone file")
    if not is_export(meta):
        raise ValueError(f"'{path}' is not a dinolab backbone export (no '{FORMAT}' metadata).")
    return backbone_from_export(state, meta)


# ---------------------------------------------------------------- strict loading


def load_state_dict_strict(module: nn.Module, state_dict: dict[str, Any], what: str) -> None:
    """Load every key or none; otherwise a ValueError naming missing, unexpected and
    mis-shaped keys (`what` names the module in the message, e.g. "student")."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict
        and hasattr(state_dict[k], "shape")
        and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches {_first(mismatched)}")
        hint = "was it saved for another architecture?"
        prefix = _common_prefix(unexpected)
        if prefix and missing:
            hint = f"the checkpoint keys carry a '{prefix}' prefix (a wrapped model?)"
        raise ValueError(f"Checkpoint does not fit the {what}: {', '.join(parts)} — {hint}")
    module.load_state_dict(state_dict, strict=True)


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return f"[{shown}{more}]"


def _common_prefix(keys: list[str]) -> str | None:
    """'module.' or '_orig_mod.' when every unexpected key starts with it (DDP, compile)."""
    for prefix in ("module.", "_orig_mod."):
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return None
