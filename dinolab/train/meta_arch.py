"""Student and teacher networks of DINO and the loss that ties them.

The student is backbone + DINO head, trained by gradients on every view; the teacher is an EMA
copy of it that sees only the global views and never receives gradients.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from dinolab.config.schema import Config
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


class DINOMetaArch(nn.Module):
    """Everything that has weights in a DINO run: student, teacher and the loss's centre."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        student_backbone = build_backbone(cfg.model)
        embed_dim = student_backbone.embed_dim
        self.student = MultiCropNetwork(student_backbone, build_head(cfg.head, embed_dim))
        teacher_model_cfg = copy.deepcopy(cfg.model)
        teacher_model_cfg.drop_path_rate = 0.0  # the teacher never drops paths (DINO)
        self.teacher = MultiCropNetwork(
            build_backbone(teacher_model_cfg), build_head(cfg.head, embed_dim)
        )
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.dino_loss = DINOLoss(
            cfg.head.out_dim,
            student_temp=cfg.loss.student_temp,
            center_momentum=cfg.loss.center_momentum,
            centering=cfg.loss.centering,
            sinkhorn_iterations=cfg.loss.sinkhorn_iterations,
        )
        self._student_params = [p for _, p in self.student.named_parameters()]
        self._teacher_params = [p for _, p in self.teacher.named_parameters()]

    def forward_loss(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        """One DINO step's loss on a collated multi-crop batch (see `data.collate`)."""
        global_crops = batch["global_crops"]
        local_crops = batch.get("local_crops")
        with torch.no_grad():
            teacher_logits = self.teacher([global_crops])["logits"]
        student_logits = self.student([global_crops, local_crops])["logits"]
        return self.dino_loss(student_logits, teacher_logits, teacher_temp, n_global=2)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- m * teacher + (1 - m) * student, for every parameter at once."""
        torch._foreach_lerp_(self._teacher_params, self._student_params, 1.0 - momentum)


def uses_dinov2(cfg: Config) -> bool:
    """True when the config asks for a DINOv2 part (iBOT, KoLeo or sequence packing)."""
    return cfg.ibot.weight > 0 or cfg.loss.koleo_weight > 0 or cfg.model.pack_sequences


def build_meta_arch(cfg: Config) -> nn.Module:
    """DINOMetaArch for DINO (unchanged keys), DINOv2MetaArch when a DINOv2 part is on."""
    if uses_dinov2(cfg):
        from dinolab.train.meta_arch_dinov2 import DINOv2MetaArch

        return DINOv2MetaArch(cfg)
    return DINOMetaArch(cfg)
