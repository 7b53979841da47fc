"""The product of a run: the teacher backbone as safetensors, with the config that rebuilds it.

A safetensors file carries only tensors and string metadata, so loading it never runs code.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from dinolab.config.schema import Config, ModelConfig
from dinolab.models import build_backbone
from dinolab.train.checkpoint import load_state_dict_strict

FORMAT = "dinolab-backbone-v1"
TEACHER_FILE = "teacher_backbone.safetensors"  # a run's exported teacher backbone


def export_backbone(
    backbone: nn.Module,
    cfg: Config | ModelConfig,
    path: str | Path,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write `backbone`'s weights and its ModelConfig (as JSON metadata) atomically."""
    path = Path(path)
    model_cfg = cfg.model if isinstance(cfg, Config) else cfg
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    metadata = {"format": FORMAT, "model": json.dumps(asdict(model_cfg)), **(extra_metadata or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_backbone(path: str | Path) -> nn.Module:
    """Rebuild a backbone exported by `export_backbone` (strict: every key must match)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No backbone file at '{path}'.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"'{path}' is not a readable safetensors file ({exc}).") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not a dinolab backbone export (no '{FORMAT}' metadata).")
    model_cfg = ModelConfig(**json.loads(metadata["model"]))
    model_cfg.drop_path_rate = 0.0
    backbone = build_backbone(model_cfg)
    load_state_dict_strict(backbone, state, f"the {model_cfg.arch} backbone")
    return backbone.eval()


def load_run_backbone(run: str | Path) -> tuple[nn.Module, Config]:
    """The teacher backbone of a run directory (its export, else its checkpoint) and config."""
    from dinolab.config.loader import load_saved_config
    from dinolab.train.checkpoint import load_checkpoint

    run = Path(run)
    if run.is_file() and run.suffix == ".safetensors":
        backbone = load_backbone(run)
        cfg_path = run.parent / "config.yaml"
        return backbone, load_saved_config(cfg_path) if cfg_path.is_file() else Config()
    if not run.is_dir():
        raise FileNotFoundError(f"Run directory '{run}' does not exist.")
    cfg = load_saved_config(run / "config.yaml")
    export = run / TEACHER_FILE
    if export.is_file():
        return load_backbone(export), cfg
    ckpt = run / "checkpoint.pth"
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"Run directory '{run}' has no teacher (neither teacher_backbone.safetensors nor "
            "checkpoint.pth): train it first with `dinolab pretrain`."
        )
    prefix = "teacher.backbone."
    state = {
        k[len(prefix) :]: v
        for k, v in load_checkpoint(ckpt)["model"].items()
        if k.startswith(prefix)
    }
    model_cfg = ModelConfig(**asdict(cfg.model))
    model_cfg.drop_path_rate = 0.0
    backbone = build_backbone(model_cfg)
    load_state_dict_strict(backbone, state, f"the {model_cfg.arch} backbone")
    return backbone.eval(), cfg
