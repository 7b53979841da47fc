"""How raw teacher scores become target distributions without collapsing.

Three ways (`loss.centering`), all computed in float32 whatever the autocast dtype of the logits:

- `EMACenter` (DINO): subtract a running mean of the teacher scores, then sharpen with a low
  temperature. The mean is global: batch sums and row counts are summed over all processes.
- `sinkhorn_knopp` (DINOv2 / SwAV): rescale exp(scores / temp) so that each row sums to 1 and
  the prototypes are used equally across the global batch. Stateless.
- "batch_softmax" (DINO's no-momentum ablation, SwAV-like): a softmax over the global batch for
  each prototype, then each row normalised to sum to 1, which is exactly one Sinkhorn-Knopp
  iteration (`sinkhorn_knopp(..., n_iterations=1)`). Stateless.

`build_center` and `teacher_targets` pick between them for the losses (DINO, iBOT) that take
a `centering` name, so the choice lives in one place; `CenteredLoss` is the part of those
losses that holds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from dinolab.distributed import all_reduce_max, all_reduce_sum


class EMACenter(nn.Module):
    """Running centre of the teacher scores, a buffer `center` of shape [1, dim].

    Note: the method is `probs`, not `apply`, because `nn.Module.apply(fn)` is used by
    model code to initialise weights recursively and must not be shadowed.
    """

    center: Tensor

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"center_momentum must be in [0, 1], got {momentum}.")
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim, dtype=torch.float32))

    def probs(self, teacher_logits: Tensor, temp: float) -> Tensor:
        """softmax((teacher_logits - center) / temp) in float32, without gradient."""
        with torch.no_grad():
            return torch.softmax((teacher_logits.float() - self.center) / temp, dim=-1)

    def forward(self, teacher_logits: Tensor, temp: float) -> Tensor:
        return self.probs(teacher_logits, temp)

    @torch.no_grad()
    def update(self, teacher_logits: Tensor) -> None:
        """center <- m * center + (1 - m) * (global mean of the rows of teacher_logits).

        The batch sum and the row count travel in one all-reduce, so ranks with unequal
        batches still give the exact global mean. With no rows anywhere (an iBOT step without
        masked patches) the centre is left as it is.
        """
        t = teacher_logits.detach().float().reshape(-1, self.center.shape[-1])
        packed = torch.cat([t.sum(dim=0), t.new_tensor([t.shape[0]])])
        all_reduce_sum(packed)
        mean = (packed[:-1] / packed[-1].clamp_min(1.0)).unsqueeze(0)
        updated = self.center.mul(self.momentum).add_(mean, alpha=1.0 - self.momentum)
        self.center.copy_(torch.where(packed[-1] > 0, updated, self.center))

    def extra_repr(self) -> str:
        return f"dim={self.center.shape[-1]}, momentum={self.momentum}"


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: Tensor, temp: float, n_iterations: int = 3) -> Tensor:
    """Teacher targets [B, K] whose rows sum to 1 and whose prototype marginals tend to B/K.

    DINOv2's algorithm (alternately give every prototype mass 1/K over the global batch and
    every sample mass 1/B), run in the log domain so that no score range can overflow or
    underflow a whole row. Sums over samples are reduced across processes.
    """
    if n_iterations < 1:
        raise ValueError(f"sinkhorn_knopp needs n_iterations >= 1, got {n_iterations}.")
    log_q = teacher_logits.detach().float() / temp  # [B, K]
    log_k = math.log(log_q.shape[1])
    log_b = torch.log(all_reduce_sum(log_q.new_tensor([float(log_q.shape[0])])))
    for _ in range(n_iterations):
        log_q -= _logsumexp_over_samples(log_q) + log_k
        log_q -= torch.logsumexp(log_q, dim=1, keepdim=True) + log_b
    return torch.exp(log_q + log_b)


CENTERINGS = ("ema", "sinkhorn", "batch_softmax")


def build_center(centering: str, dim: int, momentum: float = 0.9) -> EMACenter | None:
    """The centring state of a loss: an `EMACenter` for "ema", None for the stateless ones."""
    if centering not in CENTERINGS:
        raise ValueError(
            f"Unknown centering '{centering}': use one of {', '.join(map(repr, CENTERINGS))}."
        )
    return EMACenter(dim, momentum) if centering == "ema" else None


def teacher_targets(
    center: EMACenter | None, teacher_logits: Tensor, temp: float, sinkhorn_iterations: int = 3
) -> Tensor:
    """Teacher targets [rows, K] in float32, no gradient: centred and sharpened with `center`,
    Sinkhorn-Knopp normalised when there is none (see `build_center`)."""
    if center is None:
        return sinkhorn_knopp(teacher_logits, temp, sinkhorn_iterations)
    return center.probs(teacher_logits, temp)


class CenteredLoss(nn.Module):
    """What the DINO and iBOT losses share: a student temperature and the teacher targets of a
    centring of their own (`centering.center`, an EMA buffer saved with `state_dict()`; none
    with Sinkhorn-Knopp)."""

    def __init__(
        self,
        out_dim: int,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        centering: str = "ema",
        sinkhorn_iterations: int = 3,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.student_temp = student_temp
        # batch_softmax = one Sinkhorn-Knopp iteration (see the module docstring)
        self.sinkhorn_iterations = 1 if centering == "batch_softmax" else sinkhorn_iterations
        self.centering = build_center(centering, out_dim, center_momentum)
        self._reused: dict | None = None  # see reuse_targets

    @property
    def center(self) -> Tensor | None:
        """The running teacher centre [1, out_dim] (None with sinkhorn / batch_softmax)."""
        return None if self.centering is None else self.centering.center

    def teacher_probs(self, teacher_logits: Tensor, teacher_temp: float) -> Tensor:
        """Teacher targets [rows, K] (each row sums to 1), float32, no gradient, using the
        current centre."""
        key = (id(teacher_logits), teacher_temp)
        if self._reused is not None and key in self._reused:
            return self._reused[key][1]
        probs = teacher_targets(
            self.centering, teacher_logits, teacher_temp, self.sinkhorn_iterations
        )
        if self._reused is not None:  # the logits are held too, so their id stays theirs
            self._reused[key] = (teacher_logits, probs)
        return probs

    @contextmanager
    def reuse_targets(self) -> Iterator[None]:
        """Within it, the targets of one teacher logits tensor at one temperature are computed
        once (Sinkhorn-Knopp included): for several students learning from one teacher
        forward, whose losses leave the centre alone until the last (`update_center`)."""
        self._reused = {}
        try:
            yield
        finally:
            self._reused = None


def _logsumexp_over_samples(x: Tensor) -> Tensor:
    """log sum_b exp(x[b, k]) over the samples of every process, shape [1, K]."""
    if x.shape[0] == 0:  # this process has no rows (e.g. no masked patches)
        m = all_reduce_max(x.new_full((1, x.shape[1]), -torch.inf))
    else:
        m = all_reduce_max(x.amax(dim=0, keepdim=True))
    s = all_reduce_sum(torch.exp(x - m).sum(dim=0, keepdim=True))
    return m + torch.log(s)
