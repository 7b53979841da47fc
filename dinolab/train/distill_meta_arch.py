"""Recipe distillation (DINOv2 section 5): the pretraining losses, a frozen teacher's targets.

The student (`model.*`, fresh DINO / iBOT heads with the teacher's prototype counts) sees every
crop unmasked and without stochastic depth. The frozen teacher (backbone + heads of a finished
run: `distill_teacher`) sees the global crops and gives
- DINO targets for the student's CLS logits of all crops (globals and locals),
- iBOT targets at sampled patch positions of the global crops (`ibot.mask_ratio` of the patches
  per crop, drawn from torch's RNG, which the checkpoint restores): the student's patch tokens
  at the same positions, resampled to the teacher's grid when the patch grids differ,
- KoLeo on the student's global CLS tokens,
with Sinkhorn-Knopp or centred targets (`loss.centering`) and the teacher temperature schedule.
`teacher` is a spare EMA of the student (`teacher.momentum`, cosine to `momentum_end`): the
run's product, exported as `teacher_backbone.safetensors` like a pretraining run's teacher.
The frozen teacher is kept outside the module tree: it is in no state_dict, optimizer or DDP
bucket, so a checkpoint holds only the student, its EMA and the losses' state.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dinolab.config.schema import Config
from dinolab.losses.feature_distill import resize_patch_grid, square_grid
from dinolab.train.distill_teacher import FrozenTeacher
from dinolab.train.meta_arch_dinov2 import DINOv2MetaArch


class HoldsFrozenTeacher(torch.nn.Module):
    """A meta-arch with a `frozen` teacher held as a plain attribute (not a submodule: never
    saved or synced) that still follows the model's `.to(device)` / channels_last, and a spare
    EMA `teacher` of the student whose buffers follow the student's too."""

    frozen: FrozenTeacher

    def _hold(self, frozen: FrozenTeacher) -> None:
        object.__setattr__(self, "frozen", frozen)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.frozen._apply(fn, recurse)
        return self

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """The spare EMA's parameters, then its buffers: it never runs forward while training,
        so its BatchNorm statistics would stay at their initial values (a BN student's export
        would be broken); they follow the student's by the same EMA, counters copied."""
        super().update_teacher(momentum)
        for mine, theirs in zip(self.teacher.buffers(), self.student.buffers(), strict=True):
            if mine.is_floating_point():
                mine.lerp_(theirs, 1.0 - momentum)
            else:
                mine.copy_(theirs)


def sample_positions(num_images: int, num_patches: int, ratio: list[float]) -> Tensor:
    """Bool [num_images, num_patches]: per image a share uniform in `ratio` of its patches (at
    least one) at random positions, from torch's global CPU RNG."""
    lo, hi = float(ratio[0]), float(ratio[1])
    shares = torch.rand(num_images) * (hi - lo) + lo
    counts = (shares * num_patches).long().clamp(1, num_patches)
    ranks = torch.rand(num_images, num_patches).argsort(dim=1).argsort(dim=1)
    return ranks < counts.unsqueeze(1)


class DistillMetaArch(HoldsFrozenTeacher, DINOv2MetaArch):
    """student + spare EMA `teacher` (both saved) + `frozen` teacher (not saved)."""

    def __init__(self, cfg: Config, frozen: FrozenTeacher):
        DINOv2MetaArch.__init__(self, cfg)
        self._hold(frozen)
        if self.use_ibot and frozen.ibot_head is None:
            raise ValueError(
                f"distill.teacher='{cfg.distill.teacher}' has no iBOT head: set ibot.weight=0."
            )

    def forward_loss(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        """One distillation step's loss (`loss`) and detached parts and monitors."""
        total, out = self._student_loss(self.student, self._targets(batch), teacher_temp)
        out["loss"] = total
        return out

    def _targets(self, batch: dict) -> dict:
        """The frozen teacher's part of a step, computed once however many students learn
        from it: the crops, its DINO logits and (iBOT) the sampled positions and their logits."""
        g = batch["global_crops"]
        local = batch.get("local_crops")
        t = self.frozen(g)
        with torch.no_grad():
            t_dino = self.frozen.dino_head(t["cls"])
        xs = [g] if local is None or local.numel() == 0 else [g, local]
        targets = {"crops": xs, "dino": t_dino}
        if self.use_ibot:
            n_patches = t["patch"].shape[1]
            positions = sample_positions(g.shape[0], n_patches, self.cfg.ibot.mask_ratio)
            positions = positions.to(g.device)
            idx = positions.flatten().nonzero().squeeze(1)
            with torch.no_grad():
                t_ibot = self.frozen.ibot_head(t["patch"].flatten(0, 1)[idx])
            targets.update(positions=positions, idx=idx, ibot=t_ibot, grid=square_grid(n_patches))
        return targets

    def _student_loss(
        self, net: torch.nn.Module, targets: dict, teacher_temp: float, update_center: bool = True
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of the student network `net` against `targets` and its monitors."""
        xs = targets["crops"]
        s = self._features(net, xs, [None] * len(xs))  # no masks: the student sees all
        s_cls = torch.cat([o["x_norm_clstoken"] for o in s])
        s_patch = None
        if "positions" in targets:
            s_patch = resize_patch_grid(s[0]["x_norm_patchtokens"], targets["grid"])
            s_patch = s_patch.flatten(0, 1)[targets["idx"]]
        s_dino, s_ibot = net.heads(s_cls, s_patch)
        n = xs[0].shape[0]
        total, out = self._dino_and_koleo(
            s_dino, targets["dino"], s_cls[:n], teacher_temp, update_center
        )
        if s_patch is not None:
            # the positions are sampled, not masked: no masked fraction to monitor
            total, _ = self._add_ibot(
                total, out, s_ibot, targets["ibot"], targets["positions"], teacher_temp,
                update_center,
            )  # fmt: skip
        return total, out
