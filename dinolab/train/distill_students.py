"""Several students from one teacher forward per step (`distill.students`; the multi-student
distillation of DINOv3), in recipe mode, on one process or many (torchrun: DDP).

`distill.students=[vit_tiny, small_resnet:embed_dim=64:depth=1]`: each entry is an arch, then
optionally `:KEY=VALUE` for the keys a student may set (`STUDENT_KEYS`; unset, the arch's own
sizes); every other `model.*` key (patch size, image size, ...) is shared by all students.
Per step the frozen teacher runs once (`DistillMetaArch._targets`: its DINO logits, the sampled
iBOT positions and their logits), its target distributions (Sinkhorn-Knopp or centring) are
computed once (`CenteredLoss.reuse_targets`), and every student learns from those same
targets. Each student has fresh heads with the teacher's prototype counts and a spare EMA;
`student` and `teacher` are `StudentSet`s, so the checkpoint holds `student.NAME.*` and
`teacher.NAME.*`, the EMA updates every student at each step, and one AdamW holds each
student's own param groups (`optim.param_groups`) and clips per student (`optim.clip_units`):
AdamW and both clipping rules act per parameter, group or module, never across students, so
this is each student's own optimizer. All students follow the same lr / wd / momentum /
temperature schedules; the summed loss back-propagates each student's own loss into its own
parameters only.
A run's `model.*` becomes the first student (its checkpoint, export, online k-NN and pictures
are the first student's, as for one student); after the run every student's EMA backbone is
exported as a run directory of its own, `out_dir/students/NAME/` (config.yaml +
teacher_backbone.safetensors), which every eval, viz and export command reads.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from dinolab import distributed as dist
from dinolab.config.loader import ConfigError, save_config
from dinolab.config.schema import Config, ModelConfig
from dinolab.config.validate import _check_patch_sizes
from dinolab.models import KNOWN_ARCHS
from dinolab.models.adapters import is_adapter_arch
from dinolab.models.convert import sub_state
from dinolab.models.weights import build_inference_backbone, load_state_dict_strict
from dinolab.run_dir import CHECKPOINT, CONFIG, SUMMARY, export_teacher, load_checkpoint
from dinolab.train.distill_meta_arch import DistillMetaArch
from dinolab.train.distill_teacher import FrozenTeacher
from dinolab.train.meta_arch_dinov2 import DINOv2MetaArch
from dinolab.train.student_set import StudentSet

log = logging.getLogger("dinolab")
STUDENTS_DIR = "students"
STUDENT_KEYS = {"embed_dim": int, "depth": int, "num_heads": int, "cifar_stem": bool}
TEACHER_SIDE = ("teacher_entropy", "teacher_probs_max", "ibot_teacher_entropy")


def student_name(spec: str) -> str:
    """The student's name (module key, folder): `spec` with other characters than letters,
    digits, - and _ as _."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", spec)


def _value(spec: str, key: str, text: str):
    if STUDENT_KEYS[key] is bool:
        if text.lower() not in ("true", "false"):
            raise ConfigError(
                f"distill.students entry '{spec}': {key}={text} must be true or false."
            )
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(
            f"distill.students entry '{spec}': {key}={text} must be a whole number."
        ) from None


def parse_student(spec: str, base: ModelConfig) -> ModelConfig:
    """`base` with the entry's arch and keys (the other STUDENT_KEYS back to the arch's own)."""
    parts = spec.split(":")
    n_arch = next((i for i, p in enumerate(parts) if "=" in p), len(parts))
    arch, settings = ":".join(parts[:n_arch]), parts[n_arch:]
    if arch not in KNOWN_ARCHS and not is_adapter_arch(arch):
        close = difflib.get_close_matches(arch, KNOWN_ARCHS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"distill.students entry '{spec}' names an unknown arch '{arch}'{hint}: use one of "
            f"{', '.join(KNOWN_ARCHS)}, timm:NAME or torchvision:NAME."
        )
    model = replace(base, arch=arch, embed_dim=0, depth=0, num_heads=0, cifar_stem=False)
    for item in settings:
        key, _, text = item.partition("=")
        if key not in STUDENT_KEYS:
            raise ConfigError(
                f"distill.students entry '{spec}' sets '{key}': a student sets only "
                f"{', '.join(STUDENT_KEYS)} (ARCH:KEY=VALUE:...); the other model.* keys are "
                "shared by all students."
            )
        model = replace(model, **{key: _value(spec, key, text)})
    return model


def student_models(cfg: Config) -> dict[str, ModelConfig]:
    """name -> ModelConfig of each entry of `distill.students` (checked, in order)."""
    models: dict[str, ModelConfig] = {}
    for spec in cfg.distill.students:
        name = student_name(spec)
        if name in models:
            raise ConfigError(
                f"distill.students names the student '{name}' twice: give each student once "
                "(two of one arch need other sizes, e.g. vit_tiny and vit_tiny:depth=6)."
            )
        models[name] = parse_student(spec, cfg.model)
    if cfg.ibot.weight > 0:
        for name, model in models.items():
            if not model.arch.startswith("vit"):
                raise ConfigError(
                    f"distill.students: '{name}' is not a ViT, and iBOT learns from patch "
                    "tokens: set ibot.weight=0 or give only vit_* students."
                )
    return models


def prepare_students(cfg: Config) -> None:
    """Check `distill.students` and make `model.*` the first student (idempotent: the keys a
    student sets are reset for every other one)."""
    if not cfg.distill.students:
        return
    if cfg.distill.mode != "recipe":
        raise ConfigError(
            "distill.students needs recipe mode (a teacher run directory, whose heads give the "
            "targets): set distill.mode=recipe with such a teacher, or distill.students=[]."
        )
    if cfg.model.init:
        raise ConfigError(
            "model.init starts one backbone, and distill.students trains several: drop "
            "model.init (the students start from random weights)."
        )
    models = student_models(cfg)
    for model in models.values():
        _check_patch_sizes(replace(cfg, model=model))
    first = next(iter(models))
    if cfg.model != models[first]:
        log.info("distillation: model.* is the first student, '%s'", first)
        cfg.model = copy.deepcopy(models[first])


class MultiDistillMetaArch(DistillMetaArch):
    """`student` and spare EMA `teacher`: StudentSets of the `distill.students` networks."""

    def __init__(self, cfg: Config, frozen: FrozenTeacher):
        self.models = student_models(cfg)
        DistillMetaArch.__init__(self, cfg, frozen)

    def _network(self, model_cfg: ModelConfig) -> StudentSet:
        """All students (or, with model_cfg's drop-path rate 0, their EMA copies)."""
        rate = model_cfg.drop_path_rate
        return StudentSet(
            {
                name: DINOv2MetaArch._network(self, replace(model, drop_path_rate=rate))
                for name, model in self.models.items()
            }
        )

    def forward_loss(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        """The summed loss of all students on one teacher forward (`loss`); each student's
        parts as `KEY/NAME`, the teacher's monitors once."""
        targets = self._targets(batch)
        total: Tensor | float = 0.0
        out: dict[str, Tensor] = {}
        last = len(self.student) - 1
        with contextlib.ExitStack() as reuse:  # the teacher's targets: once for all students
            for loss_fn in (self.dino_loss, getattr(self, "ibot_loss", None)):
                if loss_fn is not None:
                    reuse.enter_context(loss_fn.reuse_targets())
            for i, (name, net) in enumerate(self.student.items()):
                # the EMA centres (centering=ema) move once per step, after the last student
                loss, parts = self._student_loss(net, targets, teacher_temp, i == last)
                total = total + loss
                out[f"loss/{name}"] = loss.detach()
                for key, value in parts.items():
                    if key not in TEACHER_SIDE:
                        out[f"{key}/{name}"] = value
                    elif i == 0:
                        out[key] = value
        out["loss"] = total
        return out


def export_students(cfg: Config) -> dict[str, str]:
    """Write each student's EMA backbone of the run's checkpoint as `out_dir/students/NAME/`
    (a run directory: config.yaml with the student's model.*, teacher_backbone.safetensors)."""
    run = Path(cfg.out_dir)
    state = load_checkpoint(run / CHECKPOINT)["model"]
    written = {}
    for name, model in student_models(cfg).items():
        prefix = f"teacher.{name}.backbone."
        weights = sub_state(state, prefix)
        with torch.random.fork_rng(devices=[]):
            backbone: nn.Module = build_inference_backbone(model)
        load_state_dict_strict(backbone, weights, f"the EMA of student '{name}' in '{run}'")
        folder = run / STUDENTS_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        student_cfg = copy.deepcopy(cfg)
        student_cfg.model, student_cfg.out_dir = copy.deepcopy(model), str(folder)
        student_cfg.distill.students = []
        note = f"student '{name}' of the multi-student distillation run {run}: its spare EMA"
        save_config(student_cfg, folder / CONFIG, [note])
        export_teacher(backbone, student_cfg, folder)
        written[name] = str(folder)
        log.info("student %s: its EMA backbone is the run directory %s", name, folder)
    return written


def finish_students(cfg: Config, summary: dict) -> dict:
    """After a multi-student run: export every student, name them in summary(.json)."""
    if cfg.distill.students and dist.is_main_process():
        summary["students"] = export_students(cfg)
        (Path(cfg.out_dir) / SUMMARY).write_text(json.dumps(summary, indent=2))
    return summary
