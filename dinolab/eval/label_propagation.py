"""Video object segmentation by nearest-neighbour label propagation, as DINO evaluates it.

DINO (Caron et al. 2021, eval_video_segmentation.py, after Jabri et al. 2020): each new frame's
patch features (L2-normalised) are compared with those of a context, the first frame with its
given mask plus the last `n_last_frames` frames with their predicted soft masks. Affinities
exp(cos / temperature) are kept only within `radius` patches (a square window) and, per target
patch, only the `topk` largest over the whole context; normalised, they average the context's
labels. The soft map is upsampled by the patch size (bilinear), each channel min-max scaled,
and the argmax taken.

The affinity is computed for a band of target rows at a time against the source rows within
`radius` of them, and exp only on the kept entries: the same numbers as DINO's dense
[context x N x N] matrix (entries outside the window are zero there and never reach the
top-k), in a fraction of the memory and time.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CHUNK_ELEMENTS = 1 << 24  # affinity entries held at once (64 MB in float32)


def neighbourhood_mask(
    grid_hw: tuple[int, int], radius: int, rows: tuple[int, int], src_rows: tuple[int, int]
) -> torch.Tensor:
    """Float [Q, S]: 1 where a target patch (in `rows`) and a source patch (in `src_rows`)
    are at most `radius` patches apart along both axes, else 0."""
    w = grid_hw[1]
    ty, tx = torch.arange(*rows).repeat_interleave(w), torch.arange(w).repeat(rows[1] - rows[0])
    sy = torch.arange(*src_rows).repeat_interleave(w)
    sx = torch.arange(w).repeat(src_rows[1] - src_rows[0])
    near = ((ty[:, None] - sy[None]).abs() <= radius) & ((tx[:, None] - sx[None]).abs() <= radius)
    return near.float()


@torch.no_grad()
def propagate(
    target: torch.Tensor,
    sources: torch.Tensor,
    labels: torch.Tensor,
    grid_hw: tuple[int, int],
    topk: int = 5,
    temperature: float = 0.1,
    radius: int = 12,
) -> torch.Tensor:
    """Soft labels [K, N] of a target frame.

    target [N, D] and sources [C, N, D] are L2-normalised patch features on the row-major
    grid `grid_hw` (N = h * w); labels [C, K, N] are the sources' soft labels. radius <= 0
    compares every patch with every patch.
    """
    h, w = grid_hw
    n_ctx, n, _ = sources.shape
    if target.shape[0] != n or n != h * w:
        raise ValueError(f"features of {target.shape[0]} / {n} patches for a {h}x{w} grid.")
    k_classes = labels.shape[1]
    out = torch.zeros(k_classes, n, dtype=torch.float32, device=target.device)
    band = h if radius <= 0 else min(h, 2 * radius + 1)
    step = max(1, CHUNK_ELEMENTS // (n_ctx * w * w * (band + 1)))
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        s0, s1 = (0, h) if radius <= 0 else (max(0, r0 - radius), min(h, r1 + radius))
        q, s = slice(r0 * w, r1 * w), slice(s0 * w, s1 * w)
        sim = torch.einsum("qd,csd->qcs", target[q], sources[:, s])
        if radius > 0:
            near = neighbourhood_mask(grid_hw, radius, (r0, r1), (s0, s1)).to(sim.device) > 0
            sim = sim.masked_fill(~near[:, None], float("-inf"))
        sim = sim.reshape(sim.shape[0], -1)  # [Q, C * S], context-major as in DINO
        src_labels = labels[:, :, s].permute(1, 0, 2).reshape(k_classes, -1)  # [K, C * S]
        out[:, q] = _top_k_average(sim, src_labels, topk, temperature)
    return out


def _top_k_average(sim: torch.Tensor, labels: torch.Tensor, k: int, temperature: float):
    """[K, Q]: per query, the labels averaged with weights exp(sim / T) over the entries whose
    affinity is at least the k-th largest (ties at the k-th included, as in DINO).

    exp is increasing, so ranking the similarities ranks the affinities; outside the window
    (-inf) the affinity is 0 and, with at least k patches in the window, never kept. Without
    ties only the k entries are touched; with ties the dense form keeps all of them.
    """
    top = sim.topk(min(k, sim.shape[1]), dim=1)
    kth = top.values[:, -1:]
    if bool(((sim >= kth).sum(dim=1) == top.values.shape[1]).all()):
        weights = torch.exp(top.values / temperature)  # [Q, k]
        picked = labels[:, top.indices]  # [K, Q, k]
        return (picked * weights).sum(-1) / weights.sum(-1)
    aff = torch.exp(sim / temperature)  # exp(-inf) = 0: outside the window
    aff = torch.where(sim < kth, torch.zeros_like(aff), aff)
    return labels @ (aff / aff.sum(dim=1, keepdim=True)).T


class LabelPropagator:
    """The context of one video: the first frame (given labels) and a queue of the last
    `n_last_frames` frames with their predicted soft labels; `step` predicts the next frame."""

    def __init__(
        self,
        first_features: torch.Tensor,
        first_labels: torch.Tensor,
        n_last_frames: int = 7,
        topk: int = 5,
        temperature: float = 0.1,
        radius: int = 12,
    ) -> None:
        """first_features [h, w, D]; first_labels [K, h, w] (one-hot on the patch grid)."""
        if n_last_frames < 0 or topk < 1 or temperature <= 0:
            raise ValueError(
                f"n_last_frames={n_last_frames}, topk={topk}, temperature={temperature}: need "
                "n_last_frames >= 0, topk >= 1 and temperature > 0."
            )
        self.grid_hw = tuple(first_features.shape[:2])
        if tuple(first_labels.shape[1:]) != self.grid_hw:
            raise ValueError(f"labels {tuple(first_labels.shape)} on a {self.grid_hw} grid.")
        self.first = (self._flat(first_features), first_labels.reshape(first_labels.shape[0], -1))
        self.queue: deque = deque(maxlen=n_last_frames)
        self.topk, self.temperature, self.radius = topk, temperature, radius

    @staticmethod
    def _flat(features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.reshape(-1, features.shape[-1]).float(), dim=1)

    def step(self, features: torch.Tensor) -> torch.Tensor:
        """Soft labels [K, h, w] of the next frame from its features [h, w, D]."""
        if tuple(features.shape[:2]) != self.grid_hw:
            raise ValueError(f"frame features {tuple(features.shape)} on a {self.grid_hw} grid.")
        target = self._flat(features)
        context = [self.first, *self.queue]
        sources = torch.stack([f for f, _ in context])
        labels = torch.stack([lab for _, lab in context])
        soft = propagate(
            target, sources, labels, self.grid_hw, self.topk, self.temperature, self.radius
        )
        if self.queue.maxlen:
            self.queue.append((target, soft))
        return soft.reshape(-1, *self.grid_hw)


def labels_from_soft(soft: torch.Tensor, patch: int, out_hw: tuple[int, int]) -> np.ndarray:
    """Label map uint8 [H, W]: soft labels [K, h, w] upsampled x patch (bilinear), each channel
    min-max scaled, argmax, then resized (nearest) to the original frame size."""
    up = F.interpolate(
        soft[None].float(),
        scale_factor=patch,
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,
    )[0]
    low = up.amin(dim=(1, 2), keepdim=True)
    span = up.amax(dim=(1, 2), keepdim=True) - low
    scaled = torch.where(span > 0, (up - low) / span.clamp_min(1e-30), up - low)
    keep = up.amax(dim=(1, 2), keepdim=True) > 0  # DINO leaves all-zero channels alone
    labels = torch.where(keep, scaled, up).argmax(dim=0).to(torch.uint8).cpu().numpy()
    return np.asarray(Image.fromarray(labels).resize((out_hw[1], out_hw[0]), Image.NEAREST))
