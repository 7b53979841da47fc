"""`distill(cfg)`: settle the distillation config, then run it as a pretraining run.

Kept apart from `train.distill` (which `train.build` imports to build the meta-architecture) so
that the chain pretrain -> trainer -> build -> distill never leads back to pretrain.
"""

from __future__ import annotations

from dinolab.config.schema import Config
from dinolab.train.distill import prepare_distill_config
from dinolab.train.distill_students import finish_students
from dinolab.train.pretrain import pretrain


def distill(cfg: Config, resume: bool = False) -> dict:
    """Distil `distill.teacher` into `model.*` (or every `distill.students` entry, each then
    exported to out_dir/students/NAME/) in `cfg.out_dir` (or continue); the summary."""
    prepare_distill_config(cfg)
    return finish_students(cfg, pretrain(cfg, resume=resume))
