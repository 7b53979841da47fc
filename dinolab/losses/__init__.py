"""Self-supervised objectives: DINO, iBOT, KoLeo, Gram anchoring, teacher-target normalisation."""

from dinolab.losses.centering import EMACenter, sinkhorn_knopp
from dinolab.losses.dino import DINOLoss
from dinolab.losses.gram import gram_loss
from dinolab.losses.ibot import IBOTPatchLoss
from dinolab.losses.koleo import koleo_loss

__all__ = [
    "DINOLoss",
    "EMACenter",
    "IBOTPatchLoss",
    "gram_loss",
    "koleo_loss",
    "sinkhorn_knopp",
]
