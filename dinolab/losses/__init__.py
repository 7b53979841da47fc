"""Self-supervised objectives: DINO, iBOT, KoLeo, and the ways teacher targets are normalised."""

from dinolab.losses.centering import EMACenter, sinkhorn_knopp
from dinolab.losses.dino import DINOLoss
from dinolab.losses.ibot import IBOTPatchLoss
from dinolab.losses.koleo import koleo_loss

__all__ = ["DINOLoss", "EMACenter", "IBOTPatchLoss", "koleo_loss", "sinkhorn_knopp"]
