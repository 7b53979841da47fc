"""The DINO self-distillation loss: cross-entropy between teacher and student views.

For every teacher global view i and every student view j != i, the loss is the batch mean of
H(P_t(i), P_s(j)) = -sum_k P_t log P_s, averaged over the n_global * n_views - n_global pairs.
The teacher side is centred (or Sinkhorn-normalised) and sharpened, has no gradient, and
everything is computed in float32.

The pair sum is computed without a per-pair loop: with P the teacher probabilities [G, B, K]
and L the student log-probabilities [V, B, K],
    sum_{i, j != i} <P_i, L_j> = <sum_i P_i, sum_j L_j> - sum_{i < G} <P_i, L_i>,
which needs one softmax per row and two element-wise reductions, exact in float32 (a matmul
would fall to TF32 on GPUs where that is enabled).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dinolab.losses.centering import CenteredLoss


class DINOLoss(CenteredLoss):
    """DINO loss with its teacher centring state.

    With `centering="ema"` (DINO) the running centre lives in the buffer
    `centering.center` [1, out_dim], so it is saved and restored with `state_dict()`.
    With `centering="sinkhorn"` (DINOv2) the loss has no state. Built like `CenteredLoss`
    (out_dim, student_temp, center_momentum, centering, sinkhorn_iterations).
    """

    def forward(
        self,
        student_logits: list[Tensor] | Tensor,
        teacher_logits: Tensor,
        teacher_temp: float,
        n_global: int = 2,
        update_center: bool = True,
    ) -> dict[str, Tensor]:
        """Loss and collapse monitors for one step.

        teacher_logits: [n_global * B, K], view-major (all images of view 0, then view 1...).
        student_logits: [n_views * B, K] (or a list of such chunks, concatenated in order),
        view-major, whose first n_global views are the teacher's global crops.
        Returns `loss` (with gradient to the student) and detached `teacher_entropy`
        (mean h(P_t) over teacher rows), `kl` (mean KL(P_t || P_s) over the pairs, so that
        loss = teacher_entropy + kl) and `teacher_probs_max` (mean top probability).
        """
        s = (
            torch.cat(list(student_logits))
            if isinstance(student_logits, list | tuple)
            else student_logits
        )
        n_views, batch = self._check_shapes(s, teacher_logits, n_global)
        k = teacher_logits.shape[-1]

        p_t = self.teacher_probs(teacher_logits, teacher_temp).view(n_global, batch, k)
        log_p_s = F.log_softmax(s.float() / self.student_temp, dim=-1).view(n_views, batch, k)

        all_pairs = (p_t.sum(dim=0) * log_p_s.sum(dim=0)).sum()
        same_view = (p_t * log_p_s[:n_global]).sum()
        n_pairs = n_global * n_views - n_global
        loss = -(all_pairs - same_view) / (n_pairs * batch)

        with torch.no_grad():
            # Each teacher view meets n_views - 1 student views, so the pair mean of h(P_t)
            # is the plain row mean, and KL = CE - h holds exactly for the returned values.
            entropy = -torch.special.xlogy(p_t, p_t).sum(dim=-1).mean()
            out = {
                "loss": loss,
                "teacher_entropy": entropy,
                "kl": loss.detach() - entropy,
                "teacher_probs_max": p_t.amax(dim=-1).mean(),
            }
        if update_center and self.centering is not None:
            self.centering.update(teacher_logits)
        return out

    def _check_shapes(self, s: Tensor, t: Tensor, n_global: int) -> tuple[int, int]:
        """(n_views, batch) from the row counts, or a ValueError naming the mismatch."""
        if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1]:
            raise ValueError(
                f"DINOLoss expects 2-D logits with the same last dimension, got student "
                f"{tuple(s.shape)} and teacher {tuple(t.shape)}."
            )
        if n_global < 1 or t.shape[0] % n_global != 0:
            raise ValueError(
                f"Teacher logits have {t.shape[0]} rows, not a multiple of n_global={n_global}."
            )
        batch = t.shape[0] // n_global
        if batch == 0 or s.shape[0] % batch != 0 or s.shape[0] // batch < n_global:
            raise ValueError(
                f"Student logits have {s.shape[0]} rows: expected n_views * {batch} rows with "
                f"n_views >= n_global={n_global} (the student must see the teacher's globals)."
            )
        n_views = s.shape[0] // batch
        if n_global * n_views - n_global == 0:
            raise ValueError(
                "DINOLoss needs at least two views: there is no (teacher, student) pair."
            )
        return n_views, batch
