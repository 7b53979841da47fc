"""dinolab: DINO / DINOv2 self-supervised pretraining, evaluation and pictures."""

__version__ = "0.1.0"
