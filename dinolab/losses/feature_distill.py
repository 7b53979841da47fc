"""Head-free feature distillation losses: a student's features against a frozen backbone's.

Used by `dinolab distill` in feature mode, where the teacher is any backbone without DINO heads
(a hub model, a weights file). The student's features are first projected linearly to the
teacher's width; then
- `cosine_distill_loss`: 1 - cos(student CLS, teacher CLS), the global term;
- `patch_similarity_loss`: for every patch, the softmax over the image's patches of its cosine
  similarities, teacher vs student (KL, so 0 when the two similarity structures agree), which
  asks for the teacher's dense structure without asking for its exact features;
- `resize_patch_grid`: student patch tokens resampled to the teacher's grid first, so two
  backbones with different patch sizes still compare patch for patch.
All in float32.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor


def cosine_distill_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean of 1 - cos(student_i, teacher_i) over rows [N, D] (teacher has no gradient)."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.detach().float(), dim=-1)).mean()


def patch_similarity_loss(student: Tensor, teacher: Tensor, temp: float = 0.07) -> Tensor:
    """KL(teacher || student) of the patch-to-patch similarity softmax, mean over patches.

    student, teacher: [N, P, D] (any widths, same P). Row p of image n is softmax_q of
    cos(x_p, x_q) / temp over the image's P patches.
    """
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(
            f"patch_similarity_loss needs the same images and patches, got student "
            f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}."
        )
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    log_p_s = F.log_softmax(s @ s.transpose(1, 2) / temp, dim=-1)
    log_p_t = F.log_softmax(t @ t.transpose(1, 2) / temp, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean()


def resize_patch_grid(patches: Tensor, grid: tuple[int, int]) -> Tensor:
    """Patch tokens [N, h*w, D] of a square grid resampled (bilinear) to `grid` [N, H*W, D]."""
    n, p, d = patches.shape
    side = math.isqrt(p)
    if side * side != p:
        raise ValueError(f"resize_patch_grid needs a square patch grid, got {p} patches.")
    if (side, side) == tuple(grid):
        return patches
    fmap = patches.transpose(1, 2).reshape(n, d, side, side)
    fmap = F.interpolate(fmap, size=tuple(grid), mode="bilinear", align_corners=False)
    return fmap.flatten(2).transpose(1, 2)


def square_grid(num_patches: int) -> tuple[int, int]:
    """(side, side) of a square grid of `num_patches` (a clear error when it is not square)."""
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(
            f"distillation expects square crops (a square patch grid), got {num_patches} patches."
        )
    return side, side
