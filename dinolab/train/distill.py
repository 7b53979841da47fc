"""`dinolab distill`: a pretraining run whose meta-architecture learns from a frozen teacher
(`distill_run.distill` runs it).

The seam is `train.build.build_meta_arch`: with `distill.teacher` set it builds a
`DistillMetaArch` (recipe) or `FeatureDistillMetaArch` (feature) instead of DINO / DINOv2, and
everything else is the pretraining machinery as it is (`Trainer`, `TrainStep`, schedules,
atomic checkpoints, exact resume, time budgets, metrics.jsonl, progress, DDP, the export of
`teacher_backbone.safetensors`, which here is the student's spare EMA).

`prepare_distill_config` settles, before anything is written, what the recipe fixes: no
stochastic depth and no masks in the student, the student's prototype counts equal to the
teacher's, iBOT only when the teacher has an iBOT head, the teacher's absolute path and sha256.
It is idempotent, so a resumed or re-issued run resolves to the config it saved.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from dinolab.config.distill import DISTILL_MODES
from dinolab.config.loader import ConfigError, load_saved_config
from dinolab.config.schema import Config
from dinolab.run_dir import CONFIG
from dinolab.train.distill_students import prepare_students
from dinolab.train.distill_teacher import (
    check_teacher_hash,
    is_run_with_checkpoint,
    load_feature_teacher,
    load_recipe_teacher,
)

log = logging.getLogger("dinolab")


def resolve_mode(cfg: Config) -> str:
    """recipe or feature (`distill.mode=auto`: recipe for a run directory with a checkpoint)."""
    d = cfg.distill
    if d.mode not in DISTILL_MODES:
        raise ConfigError(
            f"distill.mode={d.mode!r} is unknown; use one of {', '.join(DISTILL_MODES)}."
        )
    if d.mode != "auto":
        return d.mode
    return "recipe" if is_run_with_checkpoint(d.teacher) else "feature"


def _set(cfg: Config, key: str, value, why: str) -> None:
    group, name = key.split(".")
    section = getattr(cfg, group)
    if getattr(section, name) != value:
        log.info("distillation: %s=%r (%s)", key, value, why)
        setattr(section, name, value)


def check_prototypes(cfg: Config, teacher_cfg: Config) -> None:
    """The student's heads must predict the teacher's prototypes: same counts, or one sentence."""
    pairs = [("head.out_dim", cfg.head.out_dim, teacher_cfg.head.out_dim)]
    if cfg.ibot.weight > 0 and teacher_cfg.ibot.separate_head:
        pairs.append(("ibot.head.out_dim", cfg.ibot.head.out_dim, teacher_cfg.ibot.head.out_dim))
    for key, mine, theirs in pairs:
        if mine != theirs:
            raise ConfigError(
                f"The teacher '{cfg.distill.teacher}' has {theirs} prototypes where the student "
                f"has {key}={mine}: set {key}={theirs} (the student learns the teacher's "
                "prototype distributions)."
            )


def prepare_distill_config(cfg: Config) -> Config:
    """Settle the distillation settings of `cfg` in place (see the module docstring)."""
    d = cfg.distill
    if not d.teacher:
        raise ConfigError(
            "No teacher given: pass --teacher RUN_DIR_OR_MODEL (distill.teacher=...)."
        )
    if Path(d.teacher).expanduser().exists():
        d.teacher = str(Path(d.teacher).expanduser().resolve())
    d.mode = resolve_mode(cfg)
    if getattr(getattr(cfg, "gram", None), "weight", 0.0) > 0:
        raise ConfigError("Gram anchoring is not part of distillation: set gram.weight=0.")
    _set(cfg, "model.drop_path_rate", 0.0, "the student is distilled without stochastic depth")
    _set(cfg, "ibot.mask_probability", 0.0, "the student sees no mask")
    if d.mode == "recipe":
        teacher_cfg = load_saved_config(Path(d.teacher) / CONFIG)
        teacher_ibot = teacher_cfg.ibot.weight > 0
        if not teacher_ibot:
            _set(cfg, "ibot.weight", 0.0, "the teacher run has no iBOT head")
        elif cfg.ibot.weight > 0:
            _set(cfg, "ibot.separate_head", teacher_cfg.ibot.separate_head, "as the teacher's")
        check_prototypes(cfg, teacher_cfg)
    else:
        _set(cfg, "ibot.weight", 0.0, "feature mode has no prototypes")
        _set(cfg, "loss.koleo_weight", 0.0, "feature mode: cosine and patch terms only")
        _set(cfg, "head.freeze_last_layer_epochs", 0, "feature mode: linear projections only")
    prepare_students(cfg)
    d.teacher_sha256 = check_teacher_hash(cfg)
    return cfg


def build_distill_meta_arch(cfg: Config, init_weights: bool = True) -> nn.Module:
    """The distillation meta-architecture of `cfg` with its frozen teacher loaded (and its hash
    checked against `distill.teacher_sha256`)."""
    from dinolab.train.distill_feature import FeatureDistillMetaArch
    from dinolab.train.distill_meta_arch import DistillMetaArch
    from dinolab.train.distill_students import MultiDistillMetaArch
    from dinolab.train.warm_start import init_backbones

    check_teacher_hash(cfg)
    if resolve_mode(cfg) == "recipe":
        frozen, _ = load_recipe_teacher(cfg.distill.teacher, cfg)
        arch = MultiDistillMetaArch if cfg.distill.students else DistillMetaArch
        meta: nn.Module = arch(cfg, frozen)
    elif cfg.distill.students:
        raise ConfigError("distill.students needs recipe mode: set distill.students=[].")
    else:
        meta = FeatureDistillMetaArch(cfg, load_feature_teacher(cfg.distill.teacher, cfg))
    if init_weights and cfg.model.init:
        init_backbones(meta, cfg.model.init)
    return meta
