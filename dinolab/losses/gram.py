"""Gram anchoring (DINOv3): keep the student's patch-patch similarities close to a Gram teacher's.

For each image, the Gram matrix of its L2-normalised patch features [P, D] is the [P, P] matrix
of cosine similarities between its patches. The loss is the mean squared difference between
the student's and the (frozen) Gram teacher's matrices over every image and entry. It constrains
the structure of the patch features (which patches are alike), not the features themselves, so
the student keeps learning while its dense features stay as clean as the earlier teacher's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gram_matrix(patches: Tensor, remove_negative: bool = False) -> Tensor:
    """[N, P, D] patch features -> [N, P, P] cosine similarities per image, in float32.

    `remove_negative` clamps the similarities at 0 (DINOv3's `remove_neg` option).
    """
    x = F.normalize(patches.float(), dim=-1)
    gram = x @ x.transpose(-1, -2)
    return gram.clamp_min(0.0) if remove_negative else gram


def gram_loss(student: Tensor, teacher: Tensor, remove_negative: bool = False) -> Tensor:
    """MSE between the Gram matrices of `student` and `teacher` patches (both [N, P, D]).

    The gradient reaches the student only: the teacher side is detached.
    """
    if student.ndim != 3 or student.shape[:2] != teacher.shape[:2]:
        raise ValueError(
            f"gram_loss expects [images, patches, dim] features with the same images and "
            f"patches, got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}."
        )
    with torch.no_grad():
        target = gram_matrix(teacher, remove_negative)
    return F.mse_loss(gram_matrix(student, remove_negative), target)
