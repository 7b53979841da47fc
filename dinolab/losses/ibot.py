"""The iBOT patch loss of DINOv2: the student predicts the teacher's view of masked patches.

Only masked positions count. For image n with m_n masked patches and teacher targets P_t and
student log-probabilities log P_s at those patches,
    loss = -(1 / N_images) sum_n (1 / m_n) sum_{p masked in n} <P_t(p), log P_s(p)>,
so every masked image weighs the same whatever its mask size, and images without a mask only
count in N_images (DINOv2's normalisation). Teacher targets are EMA-centred + sharpened or
Sinkhorn-Knopp normalised over the masked patches of the global batch; all in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dinolab.losses.centering import CenteredLoss


class IBOTPatchLoss(CenteredLoss):
    """Masked-patch cross-entropy with its own teacher centring (buffer `centering.center`);
    built like `CenteredLoss` (out_dim, student_temp, center_momentum, centering, iterations)."""

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        masks: Tensor,
        teacher_temp: float,
        update_center: bool = True,
    ) -> dict[str, Tensor]:
        """student/teacher_logits: [M, K], the masked patches in `masks[masks]` order.

        masks: bool [N_images, N_patches]. Returns `loss` and the detached monitors
        `ibot_teacher_entropy` and `masked_fraction`.
        """
        masks = masks.bool()
        counts = masks.sum(dim=1, keepdim=True).clamp_min(1).float()  # [N, 1]
        weights = (1.0 / counts).expand_as(masks)[masks]  # [M], 1 / m_n for each patch
        rows = weights.shape[0]
        if student_logits.shape != teacher_logits.shape or student_logits.shape[0] != rows:
            raise ValueError(
                f"iBOT logits must be [masked patches, K] for both networks, got student "
                f"{tuple(student_logits.shape)}, teacher {tuple(teacher_logits.shape)} and "
                f"{rows} masked patches."
            )
        p_t = self.teacher_probs(teacher_logits, teacher_temp)
        log_p_s = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        per_patch = (p_t * log_p_s).sum(dim=-1)  # [M]
        loss = -(per_patch * weights).sum() / max(masks.shape[0], 1)
        with torch.no_grad():
            entropy = -torch.special.xlogy(p_t, p_t).sum(dim=-1)
            out = {
                "loss": loss,
                "ibot_teacher_entropy": entropy.mean() if entropy.numel() else entropy.sum(),
                "masked_fraction": masks.float().mean(),
            }
        if update_center and self.centering is not None:
            self.centering.update(teacher_logits)
        return out
