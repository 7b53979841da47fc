"""Checks of a resolved Config that its types cannot express, made before a run writes anything.

OmegaConf checks that `train.epochs` is an int; these check that the values make a run: a
device that exists, a known precision, image sizes that the ViT's patches tile, counts that are
not negative, the training step's rules (teacher update, clipping, data-parallel engine, Gram
anchoring). Each failure is one `ConfigError` sentence naming the key and a value that works,
raised before the model is built and before the run directory is written.
"""

from __future__ import annotations

from dinolab.config.loader import ConfigError
from dinolab.config.schema import Config
from dinolab.distributed import launch_world_size, resolve_device
from dinolab.hardware import PRECISIONS

TEACHER_UPDATES = ("ema", "student_copy", "prev_iter", "prev_epoch")  # train/teacher_update.py
CLIP_MODES = ("per_param", "per_module_norm")  # train/optim.py
PARALLEL = ("ddp", "fsdp")  # train/parallel.py
CHOICES = {  # key -> the values the training code knows
    "train.teacher_update": TEACHER_UPDATES,
    "optim.clip_mode": CLIP_MODES,
    "train.parallel": PARALLEL,
}

AT_LEAST = {  # key -> smallest valid value
    "train.epochs": 1,
    "train.batch_size": 1,
    "train.max_steps": 0,
    "train.log_every_steps": 1,
    "train.checkpoint_every_epochs": 1,
    "train.checkpoint_every_steps": 0,
    "train.keep_checkpoints": 0,
    "train.stop_grace_s": 0,
    "train.global_batch_size": 0,
    "data.num_local_crops": 0,
    "model.patch_size": 1,
    "eval.resize_ratio": 1.0,  # below 1 the centre crop would be larger than the resized image
}


def validate_config(cfg: Config) -> None:
    """Raise ConfigError on the first value that cannot make a run (see the module docstring)."""
    for key, low in AT_LEAST.items():
        value = _get(cfg, key)
        if value < low:
            raise ConfigError(f"{key}={value} must be at least {low}.")
    if cfg.train.precision not in PRECISIONS:
        raise ConfigError(
            f"train.precision={cfg.train.precision} is not one of {', '.join(PRECISIONS)} "
            "(fp16 is not supported: use bf16 or auto)."
        )
    if not 0.0 <= cfg.model.interpolate_offset < 1.0:  # the grid must keep g patches per side
        raise ConfigError(
            f"model.interpolate_offset={cfg.model.interpolate_offset} must be in [0, 1): use 0.1 "
            "(the official trainers' rule) or 0 (size=)."
        )
    try:
        resolve_device(cfg.train.device)
    except ValueError as e:
        raise ConfigError(f"train.device: {e}") from None
    if cfg.train.time_budget and cfg.highres.iterations > 0:
        raise ConfigError(
            "train.time_budget and highres.iterations cannot be combined: give the main phase "
            "train.epochs, or set highres.iterations=0."
        )
    _check_patch_sizes(cfg)
    check_training_rules(cfg, launch_world_size())


def check_training_rules(cfg: Config, world_size: int) -> None:
    """The values the training step needs: known choices, Gram anchoring's ranges and engine.

    `validate_config` calls it with the launch's world size, `train.step.TrainStep` (the seam
    benchmarks build directly) with the process group's, both before any model is built.
    """
    for key, choices in CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is unknown; use one of {', '.join(choices)}.")
    gram = cfg.gram
    if gram.weight <= 0:
        return
    if gram.highres_factor < 1.0 or gram.refresh_every < 0:
        raise ConfigError(
            f"gram.highres_factor={gram.highres_factor} must be at least 1 and "
            f"gram.refresh_every={gram.refresh_every} at least 0."
        )
    if cfg.train.parallel == "fsdp" and world_size > 1:
        raise ConfigError(
            "Gram anchoring (gram.weight > 0) is not supported with FSDP: use "
            "train.parallel=ddp or gram.weight=0."
        )


def _check_patch_sizes(cfg: Config) -> None:
    """Every crop size a ViT sees must be a whole number of patches."""
    if not cfg.model.arch.startswith("vit"):
        return  # ResNets and adapters take any size
    patch = cfg.model.patch_size
    sizes = {"data.global_size": cfg.data.global_size}
    if cfg.data.num_local_crops > 0:
        sizes["data.local_size"] = cfg.data.local_size
    if cfg.highres.iterations > 0:
        sizes["highres.global_size"] = cfg.highres.global_size
        if cfg.highres.local_size:
            sizes["highres.local_size"] = cfg.highres.local_size
    for key, size in sizes.items():
        if size < patch or size % patch:
            below, above = max(size // patch, 1) * patch, (size // patch + 1) * patch
            near = f"{below} or {above}" if below != above and size > patch else f"{above}"
            raise ConfigError(
                f"{key}={size} is not a multiple of model.patch_size={patch}: set {key} to "
                f"{near} (or change model.patch_size)."
            )


def _get(cfg: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)
