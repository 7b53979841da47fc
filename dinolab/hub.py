"""Published DINO / DINOv2 backbones: `dinolab.hub.load("dinov2_vits14")`.

See `dinolab.models.hub` for the names, the URLs, the key layouts and the loading rules.
"""

from dinolab.models.hub import MODELS, BackboneWithHead, describe, list_models, load

__all__ = ["MODELS", "BackboneWithHead", "describe", "list_models", "load"]
