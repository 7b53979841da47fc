"""How the teacher follows the student: `train.teacher_update` (DINO section 5.2, Figure 6).

- `ema` (default, DINO): teacher <- m * teacher + (1 - m) * student after every step.
- `student_copy`: the teacher is the current student (stop-gradient): copied after every step.
- `prev_iter`: the teacher is the student of the previous iteration: the student's weights
  before this step's update are copied just before the optimizer step.
- `prev_epoch`: the teacher is the student frozen at the start of each epoch.

The teacher's own parameters are the snapshot, so the checkpoint's model state holds it; the
one extra piece of state (which epoch `prev_epoch` last copied) travels in the checkpoint
through `state_dict` / `load_state_dict`, so resume stays exact. Only parameters follow the
student (the teacher's buffers, e.g. BatchNorm statistics, are its own), as with the EMA.
"""

from __future__ import annotations

import torch
from torch import nn

from dinolab.config.validate import TEACHER_UPDATES


def check_teacher_update(rule: str) -> None:
    """One clear sentence for an unknown `train.teacher_update`."""
    if rule not in TEACHER_UPDATES:
        raise ValueError(
            f"train.teacher_update={rule!r} is unknown; use one of {', '.join(TEACHER_UPDATES)}."
        )


@torch.no_grad()
def copy_student_to_teacher(model: nn.Module) -> None:
    """teacher <- student, parameter for parameter (exact copies, also of FSDP shards)."""
    torch._foreach_copy_(model._teacher_params, model._student_params)


class TeacherUpdate:
    """The rule's three hooks around a step; `TrainStep` calls them in this order."""

    def __init__(self, rule: str, model: nn.Module) -> None:
        check_teacher_update(rule)
        self.rule, self.model = rule, model
        self.snapshot_epoch = -1  # prev_epoch: the epoch whose start the teacher holds

    def before_forward(self, epoch: int) -> None:
        """prev_epoch: at the first step of a new epoch, freeze the student as the teacher."""
        if self.rule == "prev_epoch" and epoch != self.snapshot_epoch:
            copy_student_to_teacher(self.model)
            self.snapshot_epoch = epoch

    def before_optimizer_step(self) -> None:
        """prev_iter: the student's weights before this step's update become the teacher."""
        if self.rule == "prev_iter":
            copy_student_to_teacher(self.model)

    def after_optimizer_step(self, momentum: float) -> None:
        """ema: the momentum update (as before this option); student_copy: a plain copy."""
        if self.rule == "ema":
            self.model.update_teacher(momentum)
        elif self.rule == "student_copy":
            copy_student_to_teacher(self.model)

    def state_dict(self) -> dict:
        return {"rule": self.rule, "snapshot_epoch": self.snapshot_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Continue a saved run (a checkpoint without this state: an EMA run, nothing to do)."""
        if state.get("rule", self.rule) != self.rule:
            raise ValueError(
                f"The checkpoint was trained with train.teacher_update={state['rule']}, this run "
                f"has {self.rule}: resume it with train.teacher_update={state['rule']}."
            )
        self.snapshot_epoch = int(state.get("snapshot_epoch", -1))
