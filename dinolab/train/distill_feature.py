"""Feature distillation: a head-free teacher (hub model, weights file) trains a student.

The student is `model.*` plus two linear projections to the teacher's width (`head.cls`,
`head.patch`); on the global crops the loss is `distill.global_weight` x (1 - cosine of the
projected CLS and the teacher's CLS) + `distill.patch_weight` x the KL of the patch-to-patch
similarity distributions (student patches resampled to the teacher's grid first:
`losses.feature_distill`). As in recipe mode, `teacher` is a spare EMA of the student (the
exported backbone) and the frozen teacher stays outside the module tree.
"""

from __future__ import annotations

from torch import Tensor, nn

from dinolab.config.schema import Config, ModelConfig
from dinolab.losses.feature_distill import (
    cosine_distill_loss,
    patch_similarity_loss,
    resize_patch_grid,
    square_grid,
)
from dinolab.models import build_backbone
from dinolab.train.distill_meta_arch import HoldsFrozenTeacher
from dinolab.train.distill_teacher import FrozenTeacher
from dinolab.train.meta_arch import StudentTeacher


class ProjectedStudent(nn.Module):
    """Backbone + {"cls", "patch"}: linear maps of its tokens to the teacher's width."""

    def __init__(self, backbone: nn.Module, teacher_dim: int):
        super().__init__()
        self.backbone = backbone
        dim = int(backbone.embed_dim)
        self.head = nn.ModuleDict(
            {"cls": nn.Linear(dim, teacher_dim), "patch": nn.Linear(dim, teacher_dim)}
        )

    def tokens(self, x: Tensor) -> dict[str, Tensor]:
        """{"cls": [N, D], "patch": [N, P, D] when the backbone has patch tokens}."""
        if not hasattr(self.backbone, "forward_features"):
            return {"cls": self.backbone(x)}
        feats = self.backbone.forward_features(x)
        out = {"cls": feats["x_norm_clstoken"]}
        if feats.get("x_norm_patchtokens") is not None:
            out["patch"] = feats["x_norm_patchtokens"]
        return out


class FeatureDistillMetaArch(HoldsFrozenTeacher, StudentTeacher):
    """student + spare EMA `teacher` (both saved) + `frozen` head-free teacher (not saved)."""

    def __init__(self, cfg: Config, frozen: FrozenTeacher):
        StudentTeacher.__init__(self)
        self.cfg = cfg
        self._hold(frozen)
        self._build_student_teacher(self._network, cfg.model)

    def _network(self, model_cfg: ModelConfig) -> ProjectedStudent:
        return ProjectedStudent(build_backbone(model_cfg), self.frozen.embed_dim)

    def forward_loss(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        """Global + patch terms on the global crops (`teacher_temp` is unused here)."""
        g = batch["global_crops"]
        d = self.cfg.distill
        t = self.frozen(g)
        s = self.student.tokens(g)
        head = self.student.head
        global_loss = cosine_distill_loss(head["cls"](s["cls"]), t["cls"])
        total = d.global_weight * global_loss
        out = {"global_loss": global_loss.detach()}
        if d.patch_weight > 0 and "patch" in t and "patch" in s:
            grid = square_grid(t["patch"].shape[1])
            s_patch = head["patch"](resize_patch_grid(s["patch"], grid))
            patch_loss = patch_similarity_loss(s_patch, t["patch"], d.patch_temp)
            total = total + d.patch_weight * patch_loss
            out["patch_loss"] = patch_loss.detach()
        out["loss"] = total
        return out
