"""`gram.*`: DINOv3's Gram anchoring, a loss that keeps the student's patch similarities close
to those of an earlier teacher, so dense features do not degrade in long runs.

The Gram teacher is a frozen copy of the (EMA) teacher's backbone, taken at `start_iteration`
and refreshed every `refresh_every` iterations, at most `max_refreshes` times. The loss is the
MSE between the student's and the Gram teacher's patch-patch cosine-similarity matrices, per
image, on the global crops (`dinolab/losses/gram.py`, `dinolab/train/gram_anchor.py`). It needs
patch features (a ViT's patch tokens, a ResNet's last feature map) and runs on the DINOv2
meta-architecture (iBOT / KoLeo may stay off); not with FSDP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GramConfig:
    """Gram anchoring (DINOv3); weight 0 turns it off."""

    weight: float = 0.0  # the loss weight after its warm-up (DINOv3: 2.0)
    weight_start: float = 0.0  # the weight at start_iteration, linear to `weight`
    weight_warmup_iterations: int = 0  # 0: `weight` from start_iteration on
    start_iteration: int = 0  # the Gram teacher is taken and the loss starts at this step
    refresh_every: int = 0  # copy the EMA teacher again every N steps (0: never refreshed)
    max_refreshes: int = -1  # at most this many refreshes after the first copy (-1: no limit)
    # >1: the Gram teacher sees each global crop upsampled by this factor (bicubic) and its
    # patch features are resized (bicubic) down to the student's grid (DINOv3's high-res teacher)
    highres_factor: float = 1.0
    remove_negative: bool = False  # clamp both similarity matrices at 0 (DINOv3's remove_neg)
