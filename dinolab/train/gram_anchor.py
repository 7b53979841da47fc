"""The Gram teacher of DINOv3's Gram anchoring: when it is taken, refreshed, and how it sees.

`GramAnchor` holds a frozen copy of the teacher's backbone. `step(it, teacher)` is called before
each step's forward: at `gram.start_iteration` it copies the (EMA) teacher, then again every
`gram.refresh_every` steps, at most `gram.max_refreshes` times, and it sets the loss weight of
the step (0 before the start, a linear warm-up, then constant). Both are pure functions of the
step counter, and the copy is a submodule of the meta-architecture (saved with the model), so a
resumed run continues exactly. The loss itself is `losses.gram.gram_loss`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinolab.config.gram import GramConfig


class GramAnchor(nn.Module):
    """Gram teacher backbone (`backbone`, no gradient) + its refresh and weight schedules."""

    def __init__(self, cfg: GramConfig, teacher_backbone: nn.Module) -> None:
        super().__init__()
        if not hasattr(teacher_backbone, "forward_features"):
            raise ValueError(
                "Gram anchoring (gram.weight > 0) needs patch features: use a ViT or ResNet "
                "backbone (model.arch) or set gram.weight=0."
            )
        self.cfg = cfg
        self.backbone = copy.deepcopy(teacher_backbone).requires_grad_(False)
        self.weight_now = 0.0

    def refresh_due(self, it: int) -> bool:
        """True at start_iteration and at each refresh after it (up to max_refreshes)."""
        c = self.cfg
        if it == c.start_iteration:
            return True
        if c.refresh_every <= 0 or it < c.start_iteration:
            return False
        k, rest = divmod(it - c.start_iteration, c.refresh_every)
        return rest == 0 and (c.max_refreshes < 0 or k <= c.max_refreshes)

    def weight_at(self, it: int) -> float:
        """0 before start_iteration, weight_start -> weight over the warm-up, then weight."""
        c = self.cfg
        if it < c.start_iteration:
            return 0.0
        done = it - c.start_iteration
        if done < c.weight_warmup_iterations:
            return c.weight_start + (c.weight - c.weight_start) * done / c.weight_warmup_iterations
        return c.weight

    @torch.no_grad()
    def step(self, it: int, teacher_backbone: nn.Module) -> float:
        """Refresh the copy when due; the loss weight of step `it` (also kept in weight_now)."""
        if self.refresh_due(it):
            mine = [*self.backbone.parameters(), *self.backbone.buffers()]
            theirs = [*teacher_backbone.parameters(), *teacher_backbone.buffers()]
            torch._foreach_copy_(mine, theirs)
        self.weight_now = self.weight_at(it)
        return self.weight_now

    @torch.no_grad()
    def patch_targets(self, crops: Tensor, patch_size: int) -> Tensor:
        """The Gram teacher's patch features [N, P, D] on the student's grid of `crops`.

        With highres_factor > 1 it sees the crops upsampled (to a whole number of patches) and
        its feature map is resized (bicubic) down to the student's grid, as in DINOv3.
        """
        h, w = crops.shape[-2] // patch_size, crops.shape[-1] // patch_size
        f = self.cfg.highres_factor
        if f == 1.0:
            return self.backbone.forward_features(crops)["x_norm_patchtokens"]
        size = [max(round(s * f / patch_size), 1) * patch_size for s in crops.shape[-2:]]
        big = F.interpolate(crops, size=size, mode="bicubic", align_corners=False)
        feats = self.backbone.forward_features(big)["x_norm_patchtokens"]
        n, _, d = feats.shape
        grid = feats.transpose(1, 2).reshape(n, d, size[0] // patch_size, size[1] // patch_size)
        small = F.interpolate(grid.float(), size=(h, w), mode="bicubic", align_corners=False)
        return small.flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        c = self.cfg
        return f"start={c.start_iteration}, refresh_every={c.refresh_every}, weight={c.weight}"
