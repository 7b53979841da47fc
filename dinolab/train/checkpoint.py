"""The RNG states a checkpoint keeps, so that a resumed run continues exactly.

The checkpoint files themselves (atomic save, `weights_only` load) are `dinolab.run_dir`'s,
strict state-dict loading is `dinolab.models.weights`'s; both are re-exported here for the
code that imports them from this module.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from dinolab.models.weights import load_state_dict_strict
from dinolab.run_dir import CheckpointWriteError, find_checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "CheckpointWriteError",
    "find_checkpoint",
    "load_checkpoint",
    "load_state_dict_strict",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]


def rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU, CUDA, Python, numpy) as weights_only-safe types."""
    version, py_state, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` captured; CUDA states beyond the visible devices are skipped."""
    torch.set_rng_state(state["torch"].cpu())
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
