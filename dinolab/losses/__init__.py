"""Self-supervised objectives: the DINO loss and the ways teacher targets are normalised."""

from dinolab.losses.centering import EMACenter, sinkhorn_knopp
from dinolab.losses.dino import DINOLoss

__all__ = ["DINOLoss", "EMACenter", "sinkhorn_knopp"]
