"""Optional packages and the extra that brings each: one sentence when a feature lacks one.

The core install (`pip install dinolab`) trains, evaluates, extracts features and draws
pictures; the extras in pyproject.toml add loggers, MP4 video and the exporters. Code that needs
one of them calls `require("onnxruntime", "onnx", "checking an ONNX export")` at the point of
use, never at the top of a module, so the core imports and runs without them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA_OF", "MissingExtraError", "available", "require"]

# import name -> the dinolab extra that installs it
EXTRA_OF = {
    "tensorboard": "tensorboard",
    "torch.utils.tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "imageio_ffmpeg": "viz-video",
    "timm": "timm",
    "transformers": "hf",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
}


class MissingExtraError(ImportError, ValueError):
    """An optional package is not installed. A ValueError too, so the CLI prints one line."""


def require(module: str, extra: str | None = None, feature: str | None = None) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming the pip line that installs it.

    >>> np = require("numpy")  # any importable module comes back as itself
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # absent, or one of its own dependencies is: the extra fixes both
        extra = extra or EXTRA_OF.get(module, module.split(".")[0])
        what = feature or f"This feature ({module})"
        raise MissingExtraError(
            f"{what} needs {_pip_name(module)}, which is not installed: "
            f"pip install 'dinolab[{extra}]'."
        ) from exc


def available(module: str) -> bool:
    """True when `module` imports (a missing optional package is False, not an error)."""
    try:
        require(module)
    except MissingExtraError:
        return False
    return True


def _pip_name(module: str) -> str:
    """The name pip knows the package by (imageio_ffmpeg -> imageio-ffmpeg)."""
    top = module.rsplit(".", 1)[-1] if module.startswith("torch.") else module.split(".")[0]
    return top.replace("_", "-")
