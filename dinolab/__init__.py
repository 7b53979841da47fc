"""dinolab: DINO / DINOv2 self-supervised pretraining, evaluation and pictures.

The Python API (each name has a docstring with a runnable example):

    import dinolab
    run = dinolab.train("photos/", out="runs/x", preset="quickstart", optim={"base_lr": 1e-3})
    model = dinolab.load("runs/x")             # a run, a weights file or a hub name
    feats = dinolab.embed(model, "photos/")    # {"cls": [N, D], "pooled": [N, D], "paths": ...}
    knn = dinolab.evaluate(model, train="labelled/train", val="labelled/val")

They are imported on first use, so `import dinolab` stays fast (no torch until then).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "embed", "evaluate", "load", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":  # the dinolab.train package, which is callable (`dinolab.api.train`)
        return importlib.import_module("dinolab.train")
    if name in ("load", "embed", "evaluate"):
        return getattr(importlib.import_module("dinolab.api"), name)
    raise AttributeError(f"module 'dinolab' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
