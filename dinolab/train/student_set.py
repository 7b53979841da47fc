"""`StudentSet`: several networks trained side by side as one `student` (multi-student
distillation, `distill.students`), and `networks()`, the one place that tells them apart.

A meta-architecture whose `student` (and EMA `teacher`) is a StudentSet keeps the one-network
contract of the training code: the EMA lerps all parameters at once, and the optimizer, the
gradient clipping and the last-layer freeze treat each network as a run of its own would
(`optim.param_groups` and `optim.clip_units` expand the set per network). `backbone` is the
first network's: the one `model.*` describes, which the run directory exports, evaluates
online and draws, as for a single student.
"""

from __future__ import annotations

from torch import nn


class StudentSet(nn.ModuleDict):
    """name -> network (backbone + heads), in the order of `distill.students`."""

    @property
    def backbone(self) -> nn.Module:
        """The first network's backbone (the run's `model.*`)."""
        return next(iter(self.values())).backbone


def networks(student: nn.Module) -> list[nn.Module]:
    """The networks `student` holds: each network of a StudentSet, else `[student]`."""
    return list(student.values()) if isinstance(student, StudentSet) else [student]
