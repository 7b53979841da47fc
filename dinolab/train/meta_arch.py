"""Student and teacher networks of DINO and the loss that ties them.

The student is backbone + DINO head, trained by gradients on every view; the teacher is an EMA
copy of it that sees only the global views and never receives gradients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from dinolab.config.schema import Config, ModelConfig
from dinolab.losses import DINOLoss
from dinolab.models import build_backbone, build_head


class MultiCropNetwork(nn.Module):
    """Backbone + head; crops of one resolution go through the backbone in one call."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[Tensor]) -> dict[str, Tensor]:
        feats = [self.backbone(x) for x in crops if x is not None and x.numel() > 0]
        cls = torch.cat(feats) if len(feats) > 1 else feats[0]
        return {"cls": cls, "logits": self.head(cls)}


class StudentTeacher(nn.Module):
    """Base of the meta-architectures: a `student`, its EMA copy `teacher` and `update_teacher`."""

    def _build_student_teacher(
        self, build_network: Callable[[ModelConfig], nn.Module], model_cfg: ModelConfig
    ) -> None:
        """student = build_network(model_cfg); the teacher is the same network without
        stochastic depth, starting from the student's weights and never receiving gradients."""
        self.student = build_network(model_cfg)
        teacher_model_cfg = copy.deepcopy(model_cfg)
        teacher_model_cfg.drop_path_rate = 0.0  # the teacher never drops paths (DINO)
        self.teacher = build_network(teacher_model_cfg)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self._student_params = list(self.student.parameters())
        self._teacher_params = list(self.teacher.parameters())

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- m * teacher + (1 - m) * student, for every parameter at once."""
        torch._foreach_lerp_(self._teacher_params, self._student_params, 1.0 - momentum)


class DINOMetaArch(StudentTeacher):
    """Everything that has weights in a DINO run: student, teacher and the loss's centre."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self._build_student_teacher(self._network, cfg.model)
        self.dino_loss = DINOLoss(
            cfg.head.out_dim,
            student_temp=cfg.loss.student_temp,
            center_momentum=cfg.loss.center_momentum,
            centering=cfg.loss.centering,
            sinkhorn_iterations=cfg.loss.sinkhorn_iterations,
        )

    def _network(self, model_cfg: ModelConfig) -> MultiCropNetwork:
        backbone = build_backbone(model_cfg)
        return MultiCropNetwork(backbone, build_head(self.cfg.head, backbone.embed_dim))

    def forward_loss(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        """One DINO step's loss on a collated multi-crop batch (see `data.collate`)."""
        global_crops = batch["global_crops"]
        local_crops = batch.get("local_crops")
        with torch.no_grad():
            teacher_logits = self.teacher([global_crops])["logits"]
        student_logits = self.student([global_crops, local_crops])["logits"]
        return self.dino_loss(student_logits, teacher_logits, teacher_temp, n_global=2)
