"""`dinolab.hub.load(...)`: the one loader of every entry point, for hub names ("dinov2_vits14"),
weights files, dinolab run directories and HuggingFace model directories.

Run directories go to `dinolab.run_dir.load_run_backbone`, everything else to
`dinolab.models.hub.load` (names, URLs, key layouts, position-embedding rules). Both rebuild a
dinolab backbone file through `dinolab.models.weights`, so one file gives the same features
whichever way it is loaded.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dinolab.models import hub as _models_hub
from dinolab.models.hub import MODELS, BackboneWithHead, describe, list_models
from dinolab.run_dir import CONFIG, load_run_backbone


def load(
    name: str | Path,
    weights: str | Path | None = None,
    pretrained: bool = True,
    which: str = "teacher",
    with_head: bool = False,
) -> nn.Module:
    """An eval-mode backbone (or `BackboneWithHead` with `with_head`).

    `name` is a hub name (see `list_models()`), a weights file, a dinolab run directory (its
    teacher) or a HuggingFace model directory; see `dinolab.models.hub.load` for the rest.
    """
    path = Path(name).expanduser()
    if str(name) not in MODELS and path.is_dir() and (path / CONFIG).is_file():
        backbone, _ = load_run_backbone(path)
        return backbone.eval()
    return _models_hub.load(name, weights, pretrained, which, with_head)


__all__ = ["MODELS", "BackboneWithHead", "describe", "list_models", "load"]
